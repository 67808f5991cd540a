//! One client connection on the shard that accepted it.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::rc::Rc;

use glommio::net::TcpStream;
use kafka_protocol::messages::ApiVersionsResponse;

use crate::kafka::{self, Reply};
use crate::net::context::{ConnectionContext, Transport};
use crate::net::outgoing::Pieces;
use crate::net::sendfile::send_pieces;
use crate::protocol::codec::{Decoded, decode_request, encode_response};
use crate::protocol::error_code::ErrorCode;
use crate::protocol::frame::{FrameError, read_frame, write_frame};
use crate::protocol::old_produce::OldProduce;
use crate::shard::Shard;

/// Serves requests until the client closes the connection or sends something
/// that cannot be answered; only this connection is affected.
pub async fn serve(shard: Rc<Shard>, mut stream: TcpStream) {
    let peer = match stream.peer_addr() {
        Ok(peer) => peer,
        Err(error) => {
            tracing::debug!(%error, "connection gone before it was served");
            return;
        }
    };
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%peer, %error, "TCP_NODELAY");
    }
    let _open = crate::metrics::shard::OpenConnection::opened();
    let context = ConnectionContext::new(peer, Transport::Plain);
    let limit = shard.config().socket_request_max_bytes;
    loop {
        let frame = match read_frame(&mut stream, limit).await {
            Ok(frame) => frame,
            Err(FrameError::Closed) => return,
            Err(error) => {
                tracing::warn!(%peer, %error, "closing connection");
                return;
            }
        };
        let response = match decode_request(frame) {
            Ok(Decoded::Request(request)) => {
                context.set_client_id(request.header.client_id.as_ref());
                kafka::handle(&context, &shard, *request).await
            }
            Ok(Decoded::UnknownApiVersionsVersion { correlation_id }) => {
                let body = ApiVersionsResponse::default()
                    .with_error_code(ErrorCode::UnsupportedVersion.code())
                    .with_api_keys(kafka::api_versions::supported());
                match encode_response(correlation_id, 0, &body) {
                    Ok(frame) => Reply::Send(frame),
                    Err(_) => Reply::Close,
                }
            }
            Ok(Decoded::OldProduce(OldProduce::Respond(frame))) => Reply::Send(frame),
            Ok(Decoded::OldProduce(OldProduce::NoResponse)) => Reply::Nothing,
            Err(error) => {
                tracing::warn!(%peer, %error, "closing connection");
                return;
            }
        };
        match response {
            Reply::Send(frame) => {
                if let Err(error) = write_frame(&mut stream, frame).await {
                    tracing::debug!(%peer, %error, "write failed; closing connection");
                    return;
                }
            }
            Reply::SendPieces(frame) => {
                let file_bytes = frame.file_bytes();
                let sent = match context.transport {
                    Transport::Plain => send_from_files(&stream, frame).await,
                };
                if let Err(error) = sent {
                    tracing::debug!(%peer, %error, "zero-copy send failed; closing connection");
                    return;
                }
                crate::metrics::shard::sent_from_files(file_bytes);
            }
            Reply::Nothing => {}
            Reply::Close => return,
        }
    }
}

/// Sends a frame with file pieces on the shard's blocking pool (see
/// [`crate::net::sendfile`]) through a duplicate of the socket, so the descriptor
/// stays valid whatever happens to the connection meanwhile.
async fn send_from_files(stream: &TcpStream, frame: Pieces) -> std::io::Result<()> {
    // SAFETY: the stream's descriptor is open for the duration of this borrow.
    let socket = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) }.try_clone_to_owned()?;
    glommio::executor()
        .spawn_blocking(move || send_pieces(&socket, &frame))
        .await
}
