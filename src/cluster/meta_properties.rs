//! `meta.properties`: the identity of a data directory, as Kafka's KRaft nodes
//! keep it (`version=1`, `cluster.id`, `node.id`, `directory.id`, Java
//! properties text). Written once by `sluice format` on every node of a cluster,
//! or at the first start of the single-node default, and checked at every start
//! so a node cannot serve another node's data or join another cluster.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use crate::config::BrokerConfig;
use crate::types::NodeId;

const FILE_NAME: &str = "meta.properties";
/// Written first, then renamed over [`FILE_NAME`]: a crash leaves the old file or
/// the new one, never half of one.
const TEMP_NAME: &str = "meta.properties.tmp";
/// KRaft's `meta.properties` version (0 is ZooKeeper mode's, with `broker.id`).
const VERSION: &str = "1";
/// Far above any `meta.properties` Kafka or Sluice writes: a larger file is not one.
const MAX_FILE_BYTES: u64 = 64 << 10;
/// Properties lines read; bounded by the file size, restated for the loop.
const MAX_LINES: usize = 4096;
/// Kafka's `Uuid` text form: 16 bytes in URL-safe base64 without padding.
const UUID_TEXT_LEN: usize = 22;
const BASE64_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The identity recorded in a data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProperties {
    /// Every node of one cluster has the same.
    pub cluster_id: String,
    pub node_id: NodeId,
    /// Kafka's log directory id: unique to this directory.
    pub directory_id: String,
}

/// Reads `<data_dir>/meta.properties`; `None` when the directory has none.
pub fn read(data_dir: &Path) -> Result<Option<MetaProperties>, String> {
    let path = data_dir.join(FILE_NAME);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("{}: {error}", path.display())),
    };
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "{}: larger than {MAX_FILE_BYTES} bytes, not a meta.properties",
            path.display()
        ));
    }
    parse(&text)
        .map(Some)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes `<data_dir>/meta.properties` atomically and durably: a temporary
/// file, fsync, rename, fsync of the directory.
pub fn write(data_dir: &Path, meta: &MetaProperties) -> std::io::Result<()> {
    let text = render(meta);
    assert_eq!(
        parse(&text).as_ref(),
        Ok(meta),
        "meta.properties must read back as written"
    );
    let temp = data_dir.join(TEMP_NAME);
    let mut file = File::create(&temp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temp, data_dir.join(FILE_NAME))?;
    File::open(data_dir)?.sync_all()
}

/// A new cluster id in Kafka's form: 16 random bytes (a v4 UUID's) in URL-safe
/// base64 without padding, 22 characters.
pub fn random_cluster_id() -> String {
    uuid_text(*uuid::Uuid::new_v4().as_bytes())
}

/// Accepts what Kafka's `Uuid.fromString` accepts without padding: 22
/// characters of URL-safe base64. Like Java's decoder, the 4 unused bits of the
/// last character are not checked.
pub fn validate_cluster_id(id: &str) -> Result<(), String> {
    validate_uuid_text("cluster.id", id)
}

/// `sluice format`: writes `meta.properties` into `data_dir` (created if
/// missing) for this cluster and node. Refuses a directory already formatted,
/// unless `ignore_formatted` and it was formatted with the same ids.
pub fn format(
    data_dir: &Path,
    cluster_id: &str,
    node: NodeId,
    ignore_formatted: bool,
) -> Result<MetaProperties, String> {
    validate_cluster_id(cluster_id)?;
    if node.0 < 0 {
        return Err(format!("node.id must be 0 or more, not {node}"));
    }
    if let Some(existing) = read(data_dir)? {
        let same = existing.cluster_id == cluster_id && existing.node_id == node;
        if ignore_formatted && same {
            return Ok(existing);
        }
        return Err(format!(
            "{} is already formatted with cluster.id {} and node.id {}{}",
            data_dir.display(),
            existing.cluster_id,
            existing.node_id,
            if ignore_formatted {
                "; --ignore-formatted only skips a directory formatted with the same ids"
            } else {
                ""
            }
        ));
    }
    std::fs::create_dir_all(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let meta = MetaProperties {
        cluster_id: cluster_id.to_string(),
        node_id: node,
        directory_id: random_cluster_id(),
    };
    write(data_dir, &meta).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    Ok(meta)
}

/// At `sluice serve`: the data directory's identity. A `meta.properties` must
/// carry this node's `node.id`. Without one, the single-node default writes one
/// with a random cluster id (an existing data directory is upgraded in place);
/// a node of a configured cluster refuses, as every node must be formatted with
/// the same cluster id.
pub fn ensure(config: &BrokerConfig) -> Result<MetaProperties, String> {
    let dir = &config.data_dir;
    let node = config.node();
    match read(dir)? {
        Some(meta) if meta.node_id == node => Ok(meta),
        Some(meta) => Err(format!(
            "{}: meta.properties has node.id {}, but this node is configured with node.id {node}",
            dir.display(),
            meta.node_id
        )),
        None if config.is_single_node() => {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let meta = MetaProperties {
                cluster_id: random_cluster_id(),
                node_id: node,
                directory_id: random_cluster_id(),
            };
            write(dir, &meta).map_err(|e| format!("{}: {e}", dir.display()))?;
            Ok(meta)
        }
        None => Err(format!(
            "{dir} is not formatted: run `sluice format --cluster-id <id> --node-id {node} --data-dir {dir}` on every node first",
            dir = dir.display()
        )),
    }
}

fn render(meta: &MetaProperties) -> String {
    format!(
        "#\n# Written by Sluice: the identity of this data directory. Do not edit.\n\
         version={VERSION}\ncluster.id={}\nnode.id={}\ndirectory.id={}\n",
        meta.cluster_id, meta.node_id, meta.directory_id
    )
}

/// Java properties text as Kafka writes it: `key=value` lines (`:` also
/// separates), `#` and `!` comments; unknown keys are ignored, as Kafka does.
fn parse(text: &str) -> Result<MetaProperties, String> {
    let mut properties = BTreeMap::new();
    for line in text.lines().take(MAX_LINES) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let (key, value) = line
            .split_once(['=', ':'])
            .ok_or_else(|| format!("`{line}` is not key=value"))?;
        properties.insert(key.trim(), value.trim());
    }
    let get = |key: &str| {
        properties
            .get(key)
            .copied()
            .ok_or_else(|| format!("no {key}"))
    };
    let version = get("version")?;
    if version != VERSION {
        return Err(format!(
            "version {version} is not supported (KRaft's version {VERSION} is)"
        ));
    }
    let cluster_id = get("cluster.id")?;
    validate_cluster_id(cluster_id)?;
    let node_id = get("node.id")?;
    let node_id = node_id
        .parse::<i32>()
        .ok()
        .filter(|id| *id >= 0)
        .ok_or_else(|| format!("node.id `{node_id}` is not 0 or more"))?;
    let directory_id = get("directory.id")?;
    validate_uuid_text("directory.id", directory_id)?;
    Ok(MetaProperties {
        cluster_id: cluster_id.to_string(),
        node_id: NodeId(node_id),
        directory_id: directory_id.to_string(),
    })
}

/// Kafka's text form of a UUID. Like Kafka's `Uuid.randomUuid`, it never starts
/// with `-`, which a command line would take for a flag.
fn uuid_text(mut bytes: [u8; 16]) -> String {
    // The first character encodes the top 6 bits of the first byte; 62 is `-`.
    if bytes[0] >> 2 == 62 {
        bytes[0] &= 0x7f;
    }
    let mut text = String::with_capacity(UUID_TEXT_LEN);
    for chunk in bytes.chunks(3) {
        let mut group = [0u8; 3];
        group[..chunk.len()].copy_from_slice(chunk);
        let bits = u32::from_be_bytes([0, group[0], group[1], group[2]]);
        // Without padding, n bytes take n + 1 characters.
        for index in 0..=chunk.len() {
            let sextet = (bits >> (18 - 6 * index)) & 0x3f;
            text.push(char::from(BASE64_URL[sextet as usize]));
        }
    }
    assert_eq!(text.len(), UUID_TEXT_LEN);
    text
}

fn validate_uuid_text(config: &str, id: &str) -> Result<(), String> {
    if id.len() != UUID_TEXT_LEN || !id.bytes().all(|b| BASE64_URL.contains(&b)) {
        return Err(format!(
            "{config} `{id}` is not a Kafka UUID: 22 characters of URL-safe base64 (A-Z a-z 0-9 - _), as `sluice random-cluster-id` prints"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_voters;

    fn meta(cluster_id: &str, node: i32) -> MetaProperties {
        MetaProperties {
            cluster_id: cluster_id.to_string(),
            node_id: NodeId(node),
            directory_id: random_cluster_id(),
        }
    }

    #[test]
    fn uuid_text_is_url_safe_base64_without_padding() {
        assert_eq!(uuid_text([0; 16]), "AAAAAAAAAAAAAAAAAAAAAA");
        let mut bytes = [0xff; 16];
        bytes[0] = 0x7f;
        assert_eq!(uuid_text(bytes), "f____________________w");
        let ascending: [u8; 16] = std::array::from_fn(|i| i as u8);
        assert_eq!(uuid_text(ascending), "AAECAwQFBgcICQoLDA0ODw");
        // 0xf8 would start with `-`; the id never does.
        let mut dash = [0u8; 16];
        dash[0] = 0xf8;
        assert_eq!(uuid_text(dash), "eAAAAAAAAAAAAAAAAAAAAA");
    }

    #[test]
    fn random_cluster_ids_are_valid_and_distinct() {
        let first = random_cluster_id();
        let second = random_cluster_id();
        assert_eq!(first.len(), 22);
        assert!(validate_cluster_id(&first).is_ok());
        assert_ne!(first, second);
    }

    #[test]
    fn cluster_ids_must_be_22_url_safe_base64_characters() {
        assert!(validate_cluster_id("MkU3OEVBNTcwNTJENDM2Qk").is_ok());
        assert!(validate_cluster_id("-_AAAAAAAAAAAAAAAAAAAA").is_ok());
        for bad in [
            "",
            "MkU3OEVBNTcwNTJENDM2Q",
            "MkU3OEVBNTcwNTJENDM2Qkk",
            "MkU3OEVBNTcwNTJENDM2Q+",
            "MkU3OEVBNTcwNTJENDM2Q/",
            "MkU3OEVBNTcwNTJENDM2Q=",
            "MkU3OEVBNTcwNTJENDM2Q ",
        ] {
            let error = validate_cluster_id(bad).unwrap_err();
            assert!(error.contains("cluster.id"), "{error}");
        }
    }

    #[test]
    fn write_then_read_round_trips_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let written = meta("MkU3OEVBNTcwNTJENDM2Qk", 3);
        write(dir.path(), &written).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(written.clone()));
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(text.contains("\nversion=1\n"), "{text}");
        assert!(text.contains("\nnode.id=3\n"), "{text}");
        assert!(!dir.path().join(TEMP_NAME).exists());
        let replaced = meta("MkU3OEVBNTcwNTJENDM2Qk", 4);
        write(dir.path(), &replaced).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(replaced));
    }

    #[test]
    fn reads_kafka_written_properties() {
        let dir = tempfile::tempdir().unwrap();
        let kafka = "#\n#Tue Dec 01 15:00:00 UTC 2026\nnode.id=1\n\
                     directory.id=J8aAPcfLQt2bqs1JT_rMgQ\n! comment\nversion = 1\n\
                     cluster.id:MkU3OEVBNTcwNTJENDM2Qk\nsome.future.key=x\n";
        std::fs::write(dir.path().join(FILE_NAME), kafka).unwrap();
        assert_eq!(
            read(dir.path()).unwrap(),
            Some(MetaProperties {
                cluster_id: "MkU3OEVBNTcwNTJENDM2Qk".into(),
                node_id: NodeId(1),
                directory_id: "J8aAPcfLQt2bqs1JT_rMgQ".into(),
            })
        );
    }

    #[test]
    fn refuses_other_versions_and_broken_files() {
        let dir = tempfile::tempdir().unwrap();
        let good = "version=1\ncluster.id=MkU3OEVBNTcwNTJENDM2Qk\nnode.id=1\ndirectory.id=J8aAPcfLQt2bqs1JT_rMgQ\n";
        for (text, expected) in [
            (good.replace("version=1", "version=0"), "version 0"),
            (good.replace("version=1\n", ""), "no version"),
            (
                good.replace("cluster.id=MkU3OEVBNTcwNTJENDM2Qk\n", ""),
                "no cluster.id",
            ),
            (
                good.replace("MkU3OEVBNTcwNTJENDM2Qk", "short"),
                "cluster.id `short`",
            ),
            (good.replace("node.id=1", "node.id=-1"), "node.id `-1`"),
            (good.replace("node.id=1", "node.id=one"), "node.id `one`"),
            (
                good.replace("directory.id=J8aAPcfLQt2bqs1JT_rMgQ\n", ""),
                "no directory.id",
            ),
            (format!("{good}garbage\n"), "`garbage`"),
        ] {
            std::fs::write(dir.path().join(FILE_NAME), &text).unwrap();
            let error = read(dir.path()).unwrap_err();
            assert!(error.contains(expected), "{error} for {text:?}");
            assert!(error.contains(FILE_NAME), "{error}");
        }
        let huge = "#".repeat(MAX_FILE_BYTES as usize + 1);
        std::fs::write(dir.path().join(FILE_NAME), huge).unwrap();
        assert!(read(dir.path()).unwrap_err().contains("larger than"));
    }

    #[test]
    fn format_writes_once_and_ignore_formatted_accepts_only_the_same_ids() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("new");
        let id = "MkU3OEVBNTcwNTJENDM2Qk";
        let written = format(&dir, id, NodeId(2), false).unwrap();
        assert_eq!(written.cluster_id, id);
        assert_eq!(written.node_id, NodeId(2));
        assert_eq!(read(&dir).unwrap(), Some(written.clone()));

        let again = format(&dir, id, NodeId(2), false).unwrap_err();
        assert!(again.contains("already formatted"), "{again}");
        assert_eq!(format(&dir, id, NodeId(2), true).unwrap(), written);
        let other_node = format(&dir, id, NodeId(3), true).unwrap_err();
        assert!(other_node.contains("same ids"), "{other_node}");
        let other_cluster = format(&dir, &random_cluster_id(), NodeId(2), true).unwrap_err();
        assert!(other_cluster.contains("same ids"), "{other_cluster}");
        assert_eq!(read(&dir).unwrap(), Some(written));
    }

    #[test]
    fn format_refuses_bad_ids_without_writing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(format(dir.path(), "not-a-uuid", NodeId(0), false).is_err());
        assert!(format(dir.path(), &random_cluster_id(), NodeId(-1), false).is_err());
        assert_eq!(read(dir.path()).unwrap(), None);
    }

    #[test]
    fn ensure_writes_the_single_node_identity_once_and_checks_node_id() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("orders-0")).unwrap();
        let mut config = BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            node_id: 5,
            ..BrokerConfig::default()
        };
        let first = ensure(&config).unwrap();
        assert_eq!(first.node_id, NodeId(5));
        assert!(validate_cluster_id(&first.cluster_id).is_ok());
        assert_eq!(ensure(&config).unwrap(), first);
        assert!(dir.path().join("orders-0").is_dir());

        config.node_id = 6;
        let error = ensure(&config).unwrap_err();
        assert!(
            error.contains("node.id 5") && error.contains("node.id 6"),
            "{error}"
        );
    }

    #[test]
    fn ensure_refuses_an_unformatted_directory_of_a_cluster_node() {
        let dir = tempfile::tempdir().unwrap();
        let config = BrokerConfig {
            data_dir: dir.path().join("data"),
            node_id: 1,
            controller_quorum_voters: parse_voters("1@127.0.0.1:9093").unwrap(),
            ..BrokerConfig::default()
        };
        let error = ensure(&config).unwrap_err();
        let shown = config.data_dir.display().to_string();
        assert_eq!(
            error,
            format!(
                "{shown} is not formatted: run `sluice format --cluster-id <id> --node-id 1 --data-dir {shown}` on every node first"
            )
        );
        assert!(!config.data_dir.exists());

        let id = random_cluster_id();
        format(&config.data_dir, &id, NodeId(1), false).unwrap();
        assert_eq!(ensure(&config).unwrap().cluster_id, id);
    }
}
