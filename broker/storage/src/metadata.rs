//! Metadata in sled: typed trees with JSON values. The broker keeps its
//! vhosts, exchanges, queues, bindings and users here (`broker::records`). The plugin registry keeps its records in the same
//! database (trees `plugins`, `plugin-blobs`, `plugin-kv/*`). The schema
//! version is stored under `meta/schema`; opening a newer schema is refused.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::StorageError;

pub const SCHEMA_VERSION: u32 = 1;

/// Typed access to the metadata trees.
#[derive(Clone)]
pub struct Metadata {
    db: sled::Db,
}

impl Metadata {
    pub fn open(db: sled::Db) -> Result<Self, StorageError> {
        let meta = db.open_tree("meta").map_err(StorageError::metadata)?;
        match meta.get("schema").map_err(StorageError::metadata)? {
            None => {
                meta.insert("schema", &SCHEMA_VERSION.to_le_bytes())
                    .map_err(StorageError::metadata)?;
            }
            Some(v) => {
                let found = u32::from_le_bytes(v.as_ref().try_into().unwrap_or([0xff; 4]));
                if found > SCHEMA_VERSION {
                    return Err(StorageError::Metadata(format!(
                        "metadata schema {found} is newer than this broker understands ({SCHEMA_VERSION})"
                    )));
                }
            }
        }
        Ok(Metadata { db })
    }

    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    fn tree(&self, name: &str) -> Result<sled::Tree, StorageError> {
        self.db.open_tree(name).map_err(StorageError::metadata)
    }

    pub fn put<T: Serialize>(&self, tree: &str, key: &str, value: &T) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec(value).map_err(StorageError::metadata)?;
        self.tree(tree)?
            .insert(key, bytes)
            .map_err(StorageError::metadata)?;
        Ok(())
    }

    pub fn get<T: DeserializeOwned>(
        &self,
        tree: &str,
        key: &str,
    ) -> Result<Option<T>, StorageError> {
        match self.tree(tree)?.get(key).map_err(StorageError::metadata)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StorageError::Metadata(format!("{tree}/{key}: {e}"))),
        }
    }

    pub fn remove(&self, tree: &str, key: &str) -> Result<(), StorageError> {
        self.tree(tree)?
            .remove(key)
            .map_err(StorageError::metadata)?;
        Ok(())
    }

    /// Every record of a tree whose key starts with `prefix`.
    pub fn scan<T: DeserializeOwned>(
        &self,
        tree: &str,
        prefix: &str,
    ) -> Result<Vec<(String, T)>, StorageError> {
        self.tree(tree)?
            .scan_prefix(prefix)
            .map(|entry| {
                let (key, bytes) = entry.map_err(StorageError::metadata)?;
                let key = String::from_utf8_lossy(&key).into_owned();
                let value = serde_json::from_slice(&bytes)
                    .map_err(|e| StorageError::Metadata(format!("{tree}/{key}: {e}")))?;
                Ok((key, value))
            })
            .collect()
    }

    pub fn flush(&self) -> Result<(), StorageError> {
        self.db.flush().map_err(StorageError::metadata)?;
        Ok(())
    }
}

/// Keys: records are keyed `vhost/name` (bindings `vhost/exchange/destination/key`).
pub fn key(parts: &[&str]) -> String {
    parts.join("\u{1f}")
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    struct Record {
        vhost: String,
        name: String,
        id: u32,
    }

    #[test]
    fn records_round_trip_and_scan_by_vhost() {
        let meta = Metadata::open(sled::Config::new().temporary(true).open().unwrap()).unwrap();
        let q = |vhost: &str, name: &str, id| Record {
            vhost: vhost.into(),
            name: name.into(),
            id,
        };
        meta.put("queues", &key(&["/", "a"]), &q("/", "a", 1))
            .unwrap();
        meta.put("queues", &key(&["/", "b"]), &q("/", "b", 2))
            .unwrap();
        meta.put("queues", &key(&["other", "a"]), &q("other", "a", 3))
            .unwrap();
        let root: Vec<(String, Record)> = meta.scan("queues", &key(&["/", ""])).unwrap();
        assert_eq!(root.len(), 2);
        let other = meta
            .get::<Record>("queues", &key(&["other", "a"]))
            .unwrap()
            .unwrap();
        assert_eq!(
            (other.vhost.as_str(), other.name.as_str(), other.id),
            ("other", "a", 3)
        );
        meta.remove("queues", &key(&["/", "a"])).unwrap();
        assert!(
            meta.get::<Record>("queues", &key(&["/", "a"]))
                .unwrap()
                .is_none()
        );
    }
}
