//! c2sp.org/tlog-tiles: a tile's path and what it spans, and entry bundles. The vault serves
//! them (`vault::audit`); a mirror reads them (`mirror`).

/// Hashes in a full tile: c2sp.org/tlog-tiles tiles have height 8.
pub const TILE_WIDTH: u64 = 256;
/// Tree levels a tile spans.
pub const TILE_HEIGHT: u32 = 8;
/// Longest leaf an entry bundle can carry (its length prefix is a big-endian uint16). The
/// vault writes none longer (`catalogue::MAX_DEFINITION` bounds the largest kind).
pub const MAX_ENTRY: usize = u16::MAX as usize;

/// A tile named by a c2sp.org/tlog-tiles path: `L/N[.p/W]` (hashes at tree level 8·L) or
/// `entries/N[.p/W]` (leaves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    /// `None` for an entry bundle.
    pub level: Option<u8>,
    pub index: u64,
    /// 1–256; 256 is a full tile.
    pub width: u64,
}

impl Tile {
    /// Parses the part of a tile path after `tile/`. Every form has one spelling: `N` in groups
    /// of three digits, all but the last with an `x` (`x001/x234/067`), `W` without leading
    /// zeros and below 256.
    pub fn parse(path: &str) -> Result<Self, String> {
        let (kind, rest) = path.split_once('/').ok_or("a tile path is L/N or entries/N")?;
        let level = match kind {
            "entries" => None,
            l => Some(
                l.parse::<u8>()
                    .ok()
                    .filter(|v| v.to_string() == l && u32::from(*v) * TILE_HEIGHT < 64)
                    .ok_or_else(|| format!("tile level {l:?} is not 0–7"))?,
            ),
        };
        let (n, width) = match rest.split_once(".p/") {
            None => (rest, TILE_WIDTH),
            Some((n, w)) => {
                let width = w
                    .parse::<u64>()
                    .ok()
                    .filter(|v| v.to_string() == w && (1..TILE_WIDTH).contains(v))
                    .ok_or_else(|| format!("partial tile width {w:?} is not 1–255"))?;
                (n, width)
            }
        };
        let parts: Vec<&str> = n.split('/').collect();
        let mut index: u64 = 0;
        for (i, part) in parts.iter().enumerate() {
            let digits = if i + 1 < parts.len() { part.strip_prefix('x') } else { Some(*part) };
            let digits = digits
                .filter(|d| d.len() == 3 && d.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| format!("tile index element {part:?} is not xNNN (or NNN last)"))?;
            index = index
                .checked_mul(1000)
                .and_then(|v| v.checked_add(digits.parse::<u64>().unwrap_or(0)))
                .ok_or("tile index too large")?;
        }
        // One spelling: no leading x000 groups.
        if parts.len() > 1 && parts[0] == "x000" {
            return Err("tile index has a leading x000".into());
        }
        Ok(Self { level, index, width })
    }

    /// The tile's path after `tile/` (the inverse of [`Tile::parse`]).
    pub fn path(&self) -> String {
        let mut groups = vec![format!("{:03}", self.index % 1000)];
        let mut n = self.index / 1000;
        while n > 0 {
            groups.push(format!("x{:03}", n % 1000));
            n /= 1000;
        }
        groups.reverse();
        let kind = self.level.map_or("entries".to_string(), |l| l.to_string());
        let width = if self.width == TILE_WIDTH { String::new() } else { format!(".p/{}", self.width) };
        format!("{kind}/{}{width}", groups.join("/"))
    }

    pub fn is_full(&self) -> bool {
        self.width == TILE_WIDTH
    }

    /// Indexes `start..end` of the nodes (or leaves) it holds, if they fit in u64.
    pub fn span(&self) -> Option<(u64, u64)> {
        let start = self.index.checked_mul(TILE_WIDTH)?;
        Some((start, start.checked_add(self.width)?))
    }
}

/// The leaves of an entry bundle: each behind its big-endian uint16 length.
pub fn bundle_entries(bytes: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (len, tail) = rest.split_first_chunk::<2>().ok_or("an entry bundle ends inside a length")?;
        let len = usize::from(u16::from_be_bytes(*len));
        if tail.len() < len {
            return Err("an entry bundle ends inside an entry".into());
        }
        out.push(&tail[..len]);
        rest = &tail[len..];
    }
    Ok(out)
}
