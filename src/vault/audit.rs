//! What auditors and mirrors read (spec/formats.md §12): the checkpoints kept by size, inclusion
//! and consistency proofs (RFC 9162 §2.1.3–2.1.4) from the stored tree nodes, and the log as
//! c2sp.org/tlog-tiles (hash tiles and entry bundles).

use std::sync::Arc;

use super::{issue::inconsistent, Client, Role, Vault, VaultError};
use crate::log::audit::{push_item, Header};
use crate::log::leaf::Event;
use crate::log::merkle::{consistency_proof, inclusion_proof, CompactRange, Hash};
pub use crate::log::tile::{Tile, MAX_ENTRY, TILE_HEIGHT, TILE_WIDTH};
use crate::store::{keys, stored_leaves, tree_key, Cf};

/// Bytes of full tiles kept in memory (a level-0 hash tile is 8 KiB: 64 MiB is all of them for
/// a log of two million leaves).
pub const TILE_CACHE_BYTES: u64 = 64 << 20;

/// A cached tile weighs its bytes.
#[derive(Clone)]
pub struct TileWeight;

impl quick_cache::Weighter<(Option<u8>, u64), Arc<[u8]>> for TileWeight {
    fn weight(&self, _: &(Option<u8>, u64), tile: &Arc<[u8]>) -> u64 {
        tile.len() as u64 + 64
    }
}

/// A proof and the signed checkpoint it leads to.
pub struct Proof {
    pub hashes: Vec<Hash>,
    /// The tree size the proof is for, and the checkpoint signed at it.
    pub size: u64,
    pub checkpoint: String,
}

impl Vault {
    /// The checkpoint the vault signed when the log had `size` leaves (one is signed and kept
    /// per batch: sizes between batches have none).
    pub fn checkpoint_at(&self, size: u64) -> Result<String, VaultError> {
        let head = self.head();
        if size == head.size {
            return Ok(head.checkpoint.clone());
        }
        if size > head.size {
            return Err(VaultError::NoCheckpoint(format!("the log has {} leaves, not {size}", head.size)));
        }
        if let Some(note) = self.checkpoints.get(&size) {
            return Ok(note.to_string());
        }
        match self.store.get(Cf::Meta, &keys::checkpoint(size))? {
            Some(b) => {
                let note = String::from_utf8(b).map_err(|_| inconsistent(format!("the checkpoint at {size} is not text")))?;
                self.checkpoints.insert(size, note.as_str().into());
                Ok(note)
            }
            None => Err(VaultError::NoCheckpoint(format!(
                "no checkpoint was signed at size {size} (one is signed per batch of writes; GET /v1/log/checkpoint gives the newest)"
            ))),
        }
    }

    /// The inclusion proof of leaf `index` in the tree of `size` leaves (the newest checkpoint's
    /// when `None`), which must have a checkpoint.
    pub fn inclusion(&self, index: u64, size: Option<u64>) -> Result<Proof, VaultError> {
        let size = size.unwrap_or_else(|| self.head().size);
        let checkpoint = self.checkpoint_at(size)?;
        if index >= size {
            return Err(VaultError::Invalid(format!("leaf {index} is not in a tree of {size} leaves")));
        }
        let hashes = inclusion_proof(&self.seq.nodes(), index, size).map_err(|e| inconsistent(e.to_string()))?;
        Ok(Proof { hashes, size, checkpoint })
    }

    /// The consistency proof from the tree of `from` leaves to that of `to` (the newest when
    /// `None`), which must have a checkpoint.
    pub fn consistency(&self, from: u64, to: Option<u64>) -> Result<Proof, VaultError> {
        let to = to.unwrap_or_else(|| self.head().size);
        let checkpoint = self.checkpoint_at(to)?;
        if from == 0 || from > to {
            return Err(VaultError::Invalid(format!(
                "a consistency proof goes from 1 ≤ from ≤ to, not {from} to {to}"
            )));
        }
        let hashes = consistency_proof(&self.seq.nodes(), from, to).map_err(|e| inconsistent(e.to_string()))?;
        Ok(Proof { hashes, size: to, checkpoint })
    }

    /// A tile's bytes: hashes (32 bytes each) or an entry bundle (each leaf behind its
    /// big-endian uint16 length). 404 unless every node or leaf it holds is in the log now. Full
    /// tiles never change: they are kept in memory once read.
    pub fn tile(&self, tile: &Tile) -> Result<Arc<[u8]>, VaultError> {
        let key = (tile.level, tile.index);
        if tile.is_full() {
            if let Some(t) = self.tiles.get(&key) {
                return Ok(t);
            }
        }
        let bytes: Arc<[u8]> = self.read_tile(tile)?.into();
        if tile.is_full() {
            self.tiles.insert(key, bytes.clone());
        }
        Ok(bytes)
    }

    fn read_tile(&self, tile: &Tile) -> Result<Vec<u8>, VaultError> {
        let size = self.head().size;
        let level = tile.level.map_or(0, |l| u32::from(l) * TILE_HEIGHT);
        let (start, end) = tile.span().ok_or_else(|| VaultError::NoTile(tile.path()))?;
        // Nodes at `level` that are complete in a tree of `size` leaves.
        if end > size >> level {
            return Err(VaultError::NoTile(format!("{} is not in a log of {size} leaves", tile.path())));
        }
        let count = (end - start) as usize;
        if tile.level.is_none() {
            let mut out = Vec::with_capacity(count * 512);
            self.each_leaf(start, end, |bytes| {
                out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
                out.extend_from_slice(bytes);
                true
            })?;
            return Ok(out);
        }
        let rows = self.store.scan_from(Cf::Tree, &tree_key(level, start), count)?;
        let mut out = Vec::with_capacity(count * 32);
        for (i, (key, hash)) in rows.iter().enumerate() {
            if key.as_slice() != tree_key(level, start + i as u64) || hash.len() != 32 {
                return Err(inconsistent(format!("tree node {level}/{} is missing", start + i as u64)));
            }
            out.extend_from_slice(hash);
        }
        if rows.len() != count {
            return Err(inconsistent(format!("tree node {level}/{} is missing", start + rows.len() as u64)));
        }
        Ok(out)
    }
}

impl Vault {
    /// What links an export of leaves `from..to` (`to`: the newest checkpoint's size when
    /// `None`) to the signed checkpoints: the one at `to`, or when none was signed there the
    /// newest, with a consistency proof from `to`; the one at `from` when there is one. Any range
    /// of the log can be exported.
    pub fn export_header(&self, from: u64, to: Option<u64>) -> Result<Header, VaultError> {
        let head = self.head();
        let to = to.unwrap_or(head.size);
        if from > to || to > head.size {
            return Err(VaultError::Invalid(format!(
                "an export goes from ≤ to ≤ {} (the log's size), not {from} to {to}",
                head.size
            )));
        }
        // The head read above signs `to` when no checkpoint was signed there (a later one may
        // have come since: either binds the range).
        let (signed, checkpoint_to) = match self.checkpoint_at(to) {
            Ok(note) => (to, note),
            Err(VaultError::NoCheckpoint(_)) => (head.size, head.checkpoint.clone()),
            Err(e) => return Err(e),
        };
        let checkpoint_from = match from {
            0 => None,
            _ => match self.checkpoint_at(from) {
                Ok(note) => Some(note),
                Err(VaultError::NoCheckpoint(_)) => None,
                Err(e) => return Err(e),
            },
        };
        let nodes = self.seq.nodes();
        let broken = |e: crate::log::merkle::MerkleError| inconsistent(e.to_string());
        let proof = |a: u64, b: u64| match a {
            // From the empty tree there is no proof (and `consistency_proof` refuses it).
            0 => Ok(Vec::new()),
            _ => consistency_proof(&nodes, a, b).map_err(broken),
        };
        Ok(Header {
            origin: self.origin.clone(),
            from,
            to,
            checkpoint_from,
            checkpoint_to,
            frontier: CompactRange::from_nodes(&nodes, from).map_err(broken)?.peaks().to_vec(),
            prev_proof: match from {
                0 => Vec::new(),
                _ => inclusion_proof(&nodes, from - 1, from).map_err(broken)?,
            },
            consistency: proof(from, signed)?,
            to_proof: proof(to, signed)?,
        })
    }

    /// Logs that `client`, an auditor, exports leaves `from..to` (an `audit.exported` leaf),
    /// before anything of them leaves the vault.
    pub async fn record_export(&self, client: &Client, from: u64, to: u64) -> Result<u64, VaultError> {
        if client.role != Role::Auditor {
            return Err(VaultError::Forbidden(format!("{} may not export the log", client.id)));
        }
        let ev = Event::new("audit.exported").text("client", client.id.as_str()).uint("from", from).uint("to", to);
        let (index, _) = self.seq.submit(move |tx| Ok::<_, VaultError>(tx.append(ev))).await?;
        index
    }

    /// The export's leaves as bundle items, about `chunk` bytes at a time, handed to `send`
    /// until it returns false (the reader went away).
    pub fn export_leaves(
        &self,
        from: u64,
        to: u64,
        chunk: usize,
        mut send: impl FnMut(Vec<u8>) -> bool,
    ) -> Result<(), VaultError> {
        let mut out = Vec::with_capacity(chunk + MAX_ENTRY);
        let mut open = true;
        self.each_leaf(from, to, |bytes| {
            push_item(&mut out, bytes);
            if out.len() >= chunk {
                open = send(std::mem::replace(&mut out, Vec::with_capacity(chunk + MAX_ENTRY)));
            }
            open
        })?;
        if open && !out.is_empty() {
            send(out);
        }
        Ok(())
    }

    /// Leaves `from..to` in order, each handed to `f` until it returns false; every one must be
    /// stored and fit an entry bundle (at most [`MAX_ENTRY`] bytes), as the vault writes them.
    fn each_leaf(&self, from: u64, to: u64, mut f: impl FnMut(&[u8]) -> bool) -> Result<(), VaultError> {
        let mut next = from;
        for leaf in stored_leaves(self.store.as_ref(), from, to) {
            let (index, bytes) = leaf?;
            if index != next || bytes.len() > MAX_ENTRY {
                return Err(inconsistent(format!("leaf {next} is missing or too long for an entry bundle")));
            }
            next += 1;
            if !f(&bytes) {
                return Ok(());
            }
        }
        if next != to {
            return Err(inconsistent(format!("leaf {next} is missing")));
        }
        Ok(())
    }
}

/// `meta`: the newest checkpoint a quorum of witnesses cosigned, with their lines.
const META_COSIGNED: &[u8] = b"cosigned";

impl Vault {
    /// Keeps the newest cosigned checkpoint (`witness::Cosigner`), so that a restarted vault
    /// serves it too rather than an uncosigned head.
    pub async fn keep_cosigned(&self, note: String) -> Result<(), VaultError> {
        let (r, _) = self
            .seq
            .submit(move |tx| {
                tx.put(Cf::Meta, META_COSIGNED.to_vec(), note.into_bytes());
                Ok::<_, VaultError>(())
            })
            .await?;
        r
    }

    /// The checkpoint [`Vault::keep_cosigned`] kept last.
    pub fn kept_cosigned(&self) -> Result<Option<String>, VaultError> {
        Ok(self.store.get(Cf::Meta, META_COSIGNED)?.and_then(|b| String::from_utf8(b).ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_paths_have_one_spelling() {
        for (path, tile) in [
            ("0/000", Tile { level: Some(0), index: 0, width: 256 }),
            ("1/x001/x234/067", Tile { level: Some(1), index: 1_234_067, width: 256 }),
            ("entries/x001/234.p/7", Tile { level: None, index: 1234, width: 7 }),
            ("7/999.p/255", Tile { level: Some(7), index: 999, width: 255 }),
        ] {
            assert_eq!(Tile::parse(path), Ok(tile), "{path}");
            assert_eq!(tile.path(), path);
        }
        for bad in [
            "0/0",
            "0/1000",
            "0/x000/001",
            "0/001/002",
            "8/000",
            "00/000",
            "-1/000",
            "0/000.p/0",
            "0/000.p/256",
            "0/000.p/07",
            "entries",
            "0/",
            "0/x001",
            "0/abc",
            "1/x1/234",
            "entries/000.p/",
        ] {
            assert!(Tile::parse(bad).is_err(), "{bad}");
        }
    }
}
