//! RFC 9162 §2.1 Merkle tree math: leaf and node hashes, roots, inclusion and consistency proofs
//! and their verification. Pure: no storage, no I/O, no signing. Stored trees reach it through
//! [`Nodes`], which hands out the hash of any perfect subtree.
//!
//! A perfect subtree at `(level, index)` covers leaves `[index·2^level, (index+1)·2^level)`;
//! level 0 are the leaf hashes themselves.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    #[error("index {index} is not below tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("size {first} is larger than size {second}")]
    SizesOutOfOrder { first: u64, second: u64 },
    #[error("a consistency proof from the empty tree proves nothing; none is given")]
    FromEmptyTree,
    #[error("proof has the wrong length")]
    ProofLength,
    #[error("proof does not lead to the expected root")]
    RootMismatch,
    #[error("tree node ({level}, {index}) is missing from storage")]
    MissingNode { level: u32, index: u64 },
    #[error("a tree of {size} leaves has one peak per set bit of its size, not {peaks}")]
    Peaks { size: u64, peaks: usize },
}

/// SHA-256 of the empty string: the root of the empty tree.
pub fn empty_root() -> Hash {
    Sha256::digest(b"").into()
}

/// RFC 9162 §2.1.1: SHA-256(0x00 ‖ leaf).
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf);
    h.finalize().into()
}

/// RFC 9162 §2.1.1: SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Largest power of two strictly smaller than `n` (n ≥ 2).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// Source of perfect-subtree hashes.
pub trait Nodes {
    fn node(&self, level: u32, index: u64) -> Option<Hash>;
}

impl Nodes for [Hash] {
    /// A slice of leaf hashes computes any perfect subtree on demand (tests, small trees).
    fn node(&self, level: u32, index: u64) -> Option<Hash> {
        let width = 1u64.checked_shl(level)?;
        let start = index.checked_mul(width)?;
        let end = start.checked_add(width)?;
        if end > self.len() as u64 {
            return None;
        }
        Some(root_of(&self[start as usize..end as usize]))
    }
}

/// MTH of a list of leaf hashes, computed directly (RFC 9162 §2.1.1).
pub fn root_of(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n as u64) as usize;
            node_hash(&root_of(&leaves[..k]), &root_of(&leaves[k..]))
        }
    }
}

/// MTH(D[start:end]) where `start` is a multiple of the largest power of two ≤ `end − start`
/// (true of every range the RFC 9162 recursion visits).
pub fn subtree_hash<N: Nodes + ?Sized>(nodes: &N, start: u64, end: u64) -> Result<Hash, MerkleError> {
    let n = end - start;
    if n == 0 {
        return Ok(empty_root());
    }
    if n.is_power_of_two() && start % n == 0 {
        let level = n.trailing_zeros();
        let index = start >> level;
        return nodes.node(level, index).ok_or(MerkleError::MissingNode { level, index });
    }
    let k = split(n);
    Ok(node_hash(&subtree_hash(nodes, start, start + k)?, &subtree_hash(nodes, start + k, end)?))
}

/// RFC 9162 §2.1.3.1: the audit path of leaf `index` in the tree of `size` leaves.
pub fn inclusion_proof<N: Nodes + ?Sized>(nodes: &N, index: u64, size: u64) -> Result<Vec<Hash>, MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let mut proof = Vec::new();
    path(nodes, index, 0, size, &mut proof)?;
    Ok(proof)
}

fn path<N: Nodes + ?Sized>(nodes: &N, m: u64, start: u64, end: u64, out: &mut Vec<Hash>) -> Result<(), MerkleError> {
    let n = end - start;
    if n <= 1 {
        return Ok(());
    }
    let k = split(n);
    if m < k {
        path(nodes, m, start, start + k, out)?;
        out.push(subtree_hash(nodes, start + k, end)?);
    } else {
        path(nodes, m - k, start + k, end, out)?;
        out.push(subtree_hash(nodes, start, start + k)?);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.1: the consistency proof between sizes `first` ≤ `second`. Empty when the sizes
/// are equal; refused from the empty tree (see spec/formats.md §3).
pub fn consistency_proof<N: Nodes + ?Sized>(nodes: &N, first: u64, second: u64) -> Result<Vec<Hash>, MerkleError> {
    if first > second {
        return Err(MerkleError::SizesOutOfOrder { first, second });
    }
    if first == second {
        return Ok(Vec::new());
    }
    if first == 0 {
        return Err(MerkleError::FromEmptyTree);
    }
    let mut proof = Vec::new();
    subproof(nodes, first, 0, second, true, &mut proof)?;
    Ok(proof)
}

fn subproof<N: Nodes + ?Sized>(
    nodes: &N,
    m: u64,
    start: u64,
    end: u64,
    whole: bool,
    out: &mut Vec<Hash>,
) -> Result<(), MerkleError> {
    let n = end - start;
    if m == n {
        if !whole {
            out.push(subtree_hash(nodes, start, end)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(nodes, m, start, start + k, whole, out)?;
        out.push(subtree_hash(nodes, start + k, end)?);
    } else {
        subproof(nodes, m - k, start + k, end, false, out)?;
        out.push(subtree_hash(nodes, start, start + k)?);
    }
    Ok(())
}

/// RFC 9162 §2.1.3.2.
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> Result<(), MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(MerkleError::ProofLength);
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(MerkleError::ProofLength);
    }
    if &r != root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2, with the edge cases of spec/formats.md §3: equal sizes need an empty proof
/// and equal roots (for size 0, the empty root); a proof from the empty tree is refused.
pub fn verify_consistency(
    first: u64,
    second: u64,
    proof: &[Hash],
    first_root: &Hash,
    second_root: &Hash,
) -> Result<(), MerkleError> {
    if first > second {
        return Err(MerkleError::SizesOutOfOrder { first, second });
    }
    if first == second {
        if !proof.is_empty() {
            return Err(MerkleError::ProofLength);
        }
        // The empty tree has exactly one root.
        if first == 0 && *first_root != empty_root() {
            return Err(MerkleError::RootMismatch);
        }
        return if first_root == second_root { Ok(()) } else { Err(MerkleError::RootMismatch) };
    }
    if first == 0 {
        return Err(MerkleError::FromEmptyTree);
    }
    if proof.is_empty() {
        return Err(MerkleError::ProofLength);
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(*first_root);
    }
    path.extend_from_slice(proof);
    let (mut f, mut s) = (first - 1, second - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let mut fr = path[0];
    let mut sr = path[0];
    for c in &path[1..] {
        if s == 0 {
            return Err(MerkleError::ProofLength);
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(MerkleError::ProofLength);
    }
    if &fr != first_root || &sr != second_root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

/// The right edge of a growing tree: one hash per set bit of `size`, largest subtree first.
/// Appending a leaf yields every perfect subtree it completes, for storage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    peaks: Vec<Hash>,
}

impl CompactRange {
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds the range of a stored tree of `size` leaves.
    pub fn from_nodes<N: Nodes + ?Sized>(nodes: &N, size: u64) -> Result<Self, MerkleError> {
        let mut peaks = Vec::new();
        let mut start = 0u64;
        for level in (0..64u32).rev() {
            if size & (1 << level) != 0 {
                let index = start >> level;
                peaks.push(nodes.node(level, index).ok_or(MerkleError::MissingNode { level, index })?);
                start += 1 << level;
            }
        }
        Ok(Self { size, peaks })
    }

    /// The tree of `size` leaves from its perfect subtrees' roots, largest first (one per set bit
    /// of `size`).
    pub fn from_peaks(size: u64, peaks: Vec<Hash>) -> Result<Self, MerkleError> {
        if peaks.len() != size.count_ones() as usize {
            return Err(MerkleError::Peaks { size, peaks: peaks.len() });
        }
        Ok(Self { size, peaks })
    }

    /// Its perfect subtrees' roots, largest (leftmost) first.
    pub fn peaks(&self) -> &[Hash] {
        &self.peaks
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash; returns `(level, index, hash)` of every node it completes, the leaf
    /// itself first.
    pub fn append(&mut self, leaf: Hash) -> Vec<(u32, u64, Hash)> {
        let mut created = Vec::with_capacity(2);
        self.append_with(leaf, |level, index, h| created.push((level, index, h)));
        created
    }

    /// [`CompactRange::append`] for a caller that keeps no nodes (a mirror checking a tree).
    pub fn push(&mut self, leaf: Hash) {
        self.append_with(leaf, |_, _, _| {});
    }

    /// Appends `leaf`, handing each node it completes, the leaf first, to `created`.
    fn append_with(&mut self, leaf: Hash, mut created: impl FnMut(u32, u64, Hash)) {
        created(0, self.size, leaf);
        let mut h = leaf;
        let mut level = 0u32;
        let mut index = self.size;
        while (self.size >> level) & 1 == 1 {
            // Unwrap-free: a set bit at `level` means a peak of that level is on the stack.
            let left = self.peaks.pop().unwrap_or_default();
            h = node_hash(&left, &h);
            level += 1;
            index >>= 1;
            created(level, index, h);
        }
        self.peaks.push(h);
        self.size += 1;
    }

    pub fn root(&self) -> Hash {
        let mut it = self.peaks.iter().rev();
        match it.next() {
            None => empty_root(),
            Some(&last) => it.fold(last, |acc, p| node_hash(p, &acc)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::{engine::general_purpose::STANDARD as B64, Engine};
    use proptest::prelude::*;
    use serde::Deserialize;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn compact_range_matches_direct_root() {
        let all = leaves(70);
        let mut cr = CompactRange::new();
        assert_eq!(cr.root(), empty_root());
        for (i, l) in all.iter().enumerate() {
            for (level, index, h) in cr.append(*l) {
                assert_eq!(all[..].node(level, index), Some(h));
            }
            assert_eq!(cr.root(), root_of(&all[..=i]));
            assert_eq!(CompactRange::from_nodes(&all[..], i as u64 + 1).unwrap(), cr);
        }
    }

    fn b64(s: &str) -> Vec<u8> {
        B64.decode(s).unwrap()
    }

    /// Vectors use empty or short strings where a hash is malformed: such a case must fail.
    fn hashes<'a>(items: impl IntoIterator<Item = &'a String>) -> Option<Vec<Hash>> {
        items.into_iter().map(|s| b64(s).try_into().ok()).collect()
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Inclusion {
        leaf_idx: u64,
        tree_size: u64,
        root: String,
        leaf_hash: String,
        proof: Option<Vec<String>>,
        want_err: bool,
    }

    #[derive(Deserialize)]
    struct Consistency {
        size1: u64,
        size2: u64,
        root1: String,
        root2: String,
        proof: Option<Vec<String>>,
        #[serde(rename = "wantErr")]
        want_err: bool,
    }

    fn vector_files(kind: &str) -> Vec<std::path::PathBuf> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/vectors/merkle").join(kind);
        let mut out = Vec::new();
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "json") {
                    out.push(p);
                }
            }
        }
        assert!(!out.is_empty());
        out
    }

    #[test]
    fn transparency_dev_inclusion_vectors() {
        for p in vector_files("inclusion") {
            let c: Inclusion = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            let proof = c.proof.unwrap_or_default();
            let Some(h) = hashes([&c.leaf_hash, &c.root].into_iter().chain(&proof)) else {
                assert!(c.want_err, "{}: malformed hash in a passing case", p.display());
                continue;
            };
            let got = verify_inclusion(&h[0], c.leaf_idx, c.tree_size, &h[2..], &h[1]);
            assert_eq!(got.is_err(), c.want_err, "{}: {got:?}", p.display());
        }
    }

    #[test]
    fn transparency_dev_consistency_vectors() {
        for p in vector_files("consistency") {
            let c: Consistency = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            let proof = c.proof.unwrap_or_default();
            let Some(h) = hashes([&c.root1, &c.root2].into_iter().chain(&proof)) else {
                // Equal sizes only compare the roots, whatever their length.
                let equal_only = c.size1 == c.size2 && c.size1 > 0 && proof.is_empty() && c.root1 == c.root2;
                assert_eq!(!equal_only, c.want_err, "{}", p.display());
                continue;
            };
            let got = verify_consistency(c.size1, c.size2, &h[2..], &h[0], &h[1]);
            assert_eq!(got.is_err(), c.want_err, "{}: {got:?}", p.display());
        }
    }

    #[test]
    fn edge_cases_pinned() {
        let l = leaves(5);
        let r = |n: usize| root_of(&l[..n]);
        assert_eq!(consistency_proof(&l[..], 3, 3).unwrap(), Vec::<Hash>::new());
        assert!(verify_consistency(3, 3, &[], &r(3), &r(3)).is_ok());
        assert_eq!(consistency_proof(&l[..], 0, 3), Err(MerkleError::FromEmptyTree));
        assert_eq!(verify_consistency(0, 3, &[], &empty_root(), &r(3)), Err(MerkleError::FromEmptyTree));
        assert_eq!(verify_consistency(0, 0, &[], &empty_root(), &empty_root()), Ok(()));
        assert!(inclusion_proof(&l[..], 5, 5).is_err());
        assert_eq!(inclusion_proof(&l[..], 0, 1).unwrap(), Vec::<Hash>::new());
        assert!(verify_inclusion(&l[0], 0, 1, &[], &l[0]).is_ok());
    }

    proptest! {
        #[test]
        fn every_proof_verifies_and_any_flipped_bit_fails(n in 1u64..200, a in 0u64..200, b in 0u64..200, bit in 0usize..256) {
            let l = leaves(n);
            let root = root_of(&l);
            let i = a % n;
            let mut proof = inclusion_proof(&l[..], i, n).unwrap();
            prop_assert!(verify_inclusion(&l[i as usize], i, n, &proof, &root).is_ok());
            if !proof.is_empty() {
                let j = bit % proof.len();
                proof[j][(bit / 8) % 32] ^= 1 << (bit % 8);
                prop_assert!(verify_inclusion(&l[i as usize], i, n, &proof, &root).is_err());
            }
            let m = 1 + b % n;
            let r1 = root_of(&l[..m as usize]);
            let mut proof = consistency_proof(&l[..], m, n).unwrap();
            prop_assert!(verify_consistency(m, n, &proof, &r1, &root).is_ok());
            if !proof.is_empty() {
                let j = bit % proof.len();
                proof[j][(bit / 8) % 32] ^= 1 << (bit % 8);
                prop_assert!(verify_consistency(m, n, &proof, &r1, &root).is_err());
            }
        }
    }
}
