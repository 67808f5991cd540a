//! Rendering a dump as text for people or as one JSON document for scripts,
//! segment by segment as the walk produces them.
//!
//! The JSON document is `{"dir", "topic", "partition", "segments": [...],
//! "checkpoints": [...], "other_files": [...], "summary": {...}}`, the field
//! names of the dump's types; it is written piece by piece so a segment's
//! batches need not wait in memory for the whole partition.

use std::io::{self, Write};

use super::{
    BatchDump, Bytes, Content, Head, IndexEntry, Problem, RecordDump, SegmentReport, Tail,
};

/// Where the dump goes, called in order: `begin`, `segment` per segment,
/// `finish`.
pub trait Render {
    fn begin(&mut self, head: &Head) -> io::Result<()>;
    fn segment(&mut self, segment: &SegmentReport) -> io::Result<()>;
    fn finish(&mut self, tail: &Tail) -> io::Result<()>;
}

/// One JSON document.
pub struct Json<W> {
    out: W,
    first_segment: bool,
}

impl<W: Write> Json<W> {
    pub fn new(out: W) -> Json<W> {
        Json {
            out,
            first_segment: true,
        }
    }
}

impl<W: Write> Render for Json<W> {
    fn begin(&mut self, head: &Head) -> io::Result<()> {
        let head = serde_json::to_string(head)?;
        // The head's object, left open for the arrays that follow.
        write!(
            self.out,
            "{},\"segments\":[",
            head.strip_suffix('}').unwrap_or(&head)
        )
    }

    fn segment(&mut self, segment: &SegmentReport) -> io::Result<()> {
        if !std::mem::take(&mut self.first_segment) {
            self.out.write_all(b",")?;
        }
        serde_json::to_writer(&mut self.out, segment)?;
        Ok(())
    }

    fn finish(&mut self, tail: &Tail) -> io::Result<()> {
        let tail = serde_json::to_string(tail)?;
        writeln!(self.out, "],{}", tail.strip_prefix('{').unwrap_or(&tail))
    }
}

/// Text, one line per batch, record, entry and file.
pub struct Text<W> {
    out: W,
}

impl<W: Write> Text<W> {
    pub fn new(out: W) -> Text<W> {
        Text { out }
    }

    fn batch(&mut self, batch: &BatchDump) -> io::Result<()> {
        writeln!(
            self.out,
            "  batch position={} base_offset={} last_offset={} count={} size={} \
             leader_epoch={} magic={} crc={:#010x} computed_crc={:#010x} {} compression={} \
             timestamp_type={} transactional={} control={} base_timestamp={} max_timestamp={} \
             producer_id={} producer_epoch={} base_sequence={}{}",
            batch.position,
            batch.base_offset,
            batch.last_offset,
            batch.count,
            batch.size,
            batch.partition_leader_epoch,
            batch.magic,
            batch.crc,
            batch.computed_crc,
            if batch.crc_ok { "OK" } else { "BAD" },
            batch.compression,
            batch.timestamp_type,
            batch.transactional,
            batch.control,
            batch.base_timestamp,
            batch.max_timestamp,
            batch.producer_id,
            batch.producer_epoch,
            batch.base_sequence,
            batch.marker.map_or(String::new(), |marker| format!(
                " marker={} coordinator_epoch={}",
                marker.kind.as_str(),
                marker.coordinator_epoch
            ))
        )?;
        for record in batch.records.iter().flatten() {
            self.record(record)?;
        }
        Ok(())
    }

    fn record(&mut self, record: &RecordDump) -> io::Result<()> {
        write!(
            self.out,
            "    | offset={} timestamp={}",
            record.offset, record.timestamp
        )?;
        if let Some(marker) = record.marker {
            return writeln!(
                self.out,
                " {} coordinator_epoch={}",
                marker.kind.as_str(),
                marker.coordinator_epoch
            );
        }
        let headers: Vec<String> = record
            .headers
            .iter()
            .map(|header| {
                format!(
                    "{}={}",
                    text(Some(&header.key)),
                    text(header.value.as_ref())
                )
            })
            .collect();
        writeln!(
            self.out,
            " key={} value={} headers=[{}]",
            text(record.key.as_ref()),
            text(record.value.as_ref()),
            headers.join(", ")
        )
    }

    fn problem(&mut self, problem: &Problem) -> io::Result<()> {
        writeln!(self.out, "  CORRUPT {}", describe(problem))
    }
}

/// A key, value or header in text: quoted UTF-8, `0x…` hex, or `null`.
fn text(bytes: Option<&Bytes>) -> String {
    match bytes {
        None => "null".into(),
        Some(Bytes::Utf8(text)) => format!("{text:?}"),
        Some(Bytes::Hex { hex }) => format!("0x{hex}"),
    }
}

/// `<file> position P offset O: <kind>: <detail>`.
fn describe(problem: &Problem) -> String {
    let mut text = problem.file.clone();
    if let Some(position) = problem.position {
        text.push_str(&format!(" position {position}"));
    }
    if let Some(offset) = problem.offset {
        text.push_str(&format!(" offset {offset}"));
    }
    let kind = serde_json::to_value(problem.kind)
        .ok()
        .and_then(|kind| kind.as_str().map(str::to_string))
        .unwrap_or_default();
    format!("{text}: {kind}: {}", problem.detail)
}

impl<W: Write> Render for Text<W> {
    fn begin(&mut self, head: &Head) -> io::Result<()> {
        writeln!(
            self.out,
            "Dumping {} (topic {}, partition {})",
            head.dir, head.topic, head.partition
        )
    }

    fn segment(&mut self, segment: &SegmentReport) -> io::Result<()> {
        let log = &segment.log;
        writeln!(
            self.out,
            "Segment {}: base_offset={} size={} batches={} valid_bytes={} next_offset={}",
            log.file,
            log.base_offset,
            log.size,
            log.batches.len(),
            log.valid_bytes,
            log.next_offset
                .map_or_else(|| "none".to_string(), |o| o.to_string())
        )?;
        for batch in &log.batches {
            self.batch(batch)?;
        }
        for problem in &log.problems {
            self.problem(problem)?;
        }
        for note in &segment.notes {
            writeln!(self.out, "  note: {note}")?;
        }
        for index in &segment.indexes {
            writeln!(
                self.out,
                "  Index {}: kind={} size={} entries={}",
                index.file,
                index.kind.as_str(),
                index.size,
                index.entries.len()
            )?;
            for entry in &index.entries {
                let (line, ok) = match entry {
                    IndexEntry::Offset {
                        offset,
                        position,
                        ok,
                    } => (format!("offset={offset} position={position}"), ok),
                    IndexEntry::Time {
                        timestamp,
                        offset,
                        ok,
                    } => (format!("timestamp={timestamp} offset={offset}"), ok),
                    IndexEntry::Txn {
                        producer_id,
                        first_offset,
                        last_offset,
                        last_stable_offset,
                        ok,
                    } => (
                        format!(
                            "producer_id={producer_id} first_offset={first_offset} \
                             last_offset={last_offset} last_stable_offset={last_stable_offset}"
                        ),
                        ok,
                    ),
                };
                writeln!(self.out, "    {line} {}", if *ok { "OK" } else { "BAD" })?;
            }
            if let Some(error) = &index.decoder_error {
                writeln!(
                    self.out,
                    "    the broker refuses this index ({error}): recovery rebuilds it"
                )?;
            }
            for problem in &index.problems {
                self.problem(problem)?;
            }
        }
        Ok(())
    }

    fn finish(&mut self, tail: &Tail) -> io::Result<()> {
        for checkpoint in &tail.checkpoints {
            let content = match &checkpoint.content {
                Content::Offset { offset } => format!("offset={offset}"),
                Content::LeaderEpochs { entries } => {
                    let entries: Vec<String> = entries
                        .iter()
                        .map(|e| format!("epoch={} start_offset={}", e.epoch, e.start_offset))
                        .collect();
                    format!("leader epochs [{}]", entries.join(", "))
                }
                Content::PartitionMetadata { topic_id } => {
                    format!("topic_id={}", topic_id.as_deref().unwrap_or("none"))
                }
                Content::ProducerSnapshot { up_to, producers } => {
                    format!("up_to={up_to} producers={}", producers.len())
                }
                Content::Unreadable { error } => format!("unreadable: {error}"),
            };
            writeln!(self.out, "Checkpoint {}: {content}", checkpoint.file)?;
            if let Content::ProducerSnapshot { producers, .. } = &checkpoint.content {
                for p in producers {
                    writeln!(
                        self.out,
                        "  producer_id={} producer_epoch={} last_sequence={} last_timestamp={} \
                         coordinator_epoch={} current_txn_start_offset={}",
                        p.producer_id,
                        p.producer_epoch,
                        p.last_sequence,
                        p.last_timestamp,
                        p.coordinator_epoch,
                        p.current_txn_start_offset
                            .map_or_else(|| "none".to_string(), |o| o.to_string())
                    )?;
                }
            }
            for problem in &checkpoint.problems {
                self.problem(problem)?;
            }
        }
        for file in &tail.other_files {
            writeln!(
                self.out,
                "File {}: size={}: {}",
                file.file, file.size, file.note
            )?;
        }
        let summary = &tail.summary;
        let range = match (summary.first_offset, summary.next_offset) {
            (Some(first), Some(next)) => format!(", offsets {first}..{next}"),
            _ => String::new(),
        };
        let counts = format!(
            "{} segments, {} batches, {} records{range}",
            summary.segments, summary.batches, summary.records
        );
        match summary.problems.first() {
            None => writeln!(self.out, "Summary: consistent: {counts}"),
            Some(first) => writeln!(
                self.out,
                "Summary: CORRUPT: {} problems, first: {}; {counts}",
                summary.problems.len(),
                describe(first)
            ),
        }
    }
}
