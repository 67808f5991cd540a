//! A response on its way to the socket: pieces of bytes in memory and ranges of
//! segment files that are sent from the page cache without passing through user
//! space.

use std::fs::File;
use std::sync::Arc;

use bytes::Bytes;

/// `len` bytes of `file` from `position`.
#[derive(Debug, Clone)]
pub struct FileRange {
    pub file: Arc<File>,
    pub position: u64,
    pub len: u64,
}

#[derive(Debug, Clone)]
pub enum Piece {
    Bytes(Bytes),
    File(FileRange),
}

impl Piece {
    pub fn len(&self) -> u64 {
        match self {
            Piece::Bytes(bytes) => bytes.len() as u64,
            Piece::File(range) => range.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A sequence of pieces sent back to back: a partition's records, or a whole frame.
#[derive(Debug, Clone, Default)]
pub struct Pieces(Vec<Piece>);

impl Pieces {
    pub fn push(&mut self, piece: Piece) {
        if !piece.is_empty() {
            self.0.push(piece);
        }
    }

    /// Total bytes.
    pub fn len(&self) -> u64 {
        self.0.iter().map(Piece::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Bytes in pieces sent from files.
    pub fn file_bytes(&self) -> u64 {
        self.0
            .iter()
            .filter_map(|piece| match piece {
                Piece::File(range) => Some(range.len),
                Piece::Bytes(_) => None,
            })
            .sum()
    }

    /// True when some piece must be sent from a file.
    pub fn has_files(&self) -> bool {
        self.0.iter().any(|piece| matches!(piece, Piece::File(_)))
    }

    /// The bytes, when they are all in one piece of memory.
    pub fn as_single_bytes(&self) -> Option<Bytes> {
        match self.0.as_slice() {
            [] => Some(Bytes::new()),
            [Piece::Bytes(bytes)] => Some(bytes.clone()),
            _ => None,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Piece> {
        self.0.iter()
    }

    pub fn into_vec(self) -> Vec<Piece> {
        self.0
    }
}

impl From<Bytes> for Pieces {
    fn from(bytes: Bytes) -> Pieces {
        let mut pieces = Pieces::default();
        pieces.push(Piece::Bytes(bytes));
        pieces
    }
}
