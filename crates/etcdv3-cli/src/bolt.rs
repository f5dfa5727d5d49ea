//! A minimal read-only reader of bbolt files (etcd's backend), enough for
//! `snapshot status`: walk every bucket of the newest valid meta page and
//! hand out its key-value pairs in order.

use thiserror::Error;

/// Why a file could not be read as a bbolt database.
#[derive(Debug, Error)]
#[error("not a valid bbolt database: {0}")]
pub struct BoltError(String);

const MAGIC: u32 = 0xED0C_DAED;
const PAGE_HEADER: usize = 16;
const BRANCH: u16 = 0x01;
const LEAF: u16 = 0x02;
const BUCKET_LEAF_FLAG: u32 = 0x01;

/// One bucket's entries (key, value; empty for a nested bucket) in order.
pub type Entries<'a> = Vec<(&'a [u8], &'a [u8])>;

/// A bbolt file in memory.
pub struct Bolt<'a> {
    data: &'a [u8],
    page_size: usize,
    root: u64,
    /// High-water mark of pages: the size of the file bbolt uses.
    pub pages: u64,
}

fn u16_at(d: &[u8], off: usize) -> Result<u16, BoltError> {
    off.checked_add(2)
        .and_then(|end| d.get(off..end))
        .and_then(|b| b.try_into().ok())
        .map(u16::from_le_bytes)
        .ok_or_else(|| BoltError(format!("read past the end at {off}")))
}

fn u32_at(d: &[u8], off: usize) -> Result<u32, BoltError> {
    off.checked_add(4)
        .and_then(|end| d.get(off..end))
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| BoltError(format!("read past the end at {off}")))
}

fn u64_at(d: &[u8], off: usize) -> Result<u64, BoltError> {
    off.checked_add(8)
        .and_then(|end| d.get(off..end))
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| BoltError(format!("read past the end at {off}")))
}

fn slice(d: &[u8], off: usize, len: usize) -> Result<&[u8], BoltError> {
    off.checked_add(len)
        .and_then(|end| d.get(off..end))
        .ok_or_else(|| BoltError(format!("read past the end at {off}+{len}")))
}

impl<'a> Bolt<'a> {
    /// Open `data`, choosing the meta page with the highest transaction id.
    pub fn open(data: &'a [u8]) -> Result<Bolt<'a>, BoltError> {
        let mut best: Option<(u64, usize, u64, u64)> = None;
        let first_size = u32_at(data, PAGE_HEADER + 8)? as usize;
        for i in 0..2 {
            let off = i * first_size.max(1024);
            let Ok(magic) = u32_at(data, off + PAGE_HEADER) else {
                continue;
            };
            if magic != MAGIC {
                continue;
            }
            let m = off + PAGE_HEADER;
            let page_size = u32_at(data, m + 8)? as usize;
            let root = u64_at(data, m + 16)?;
            let pages = u64_at(data, m + 40)?;
            let txid = u64_at(data, m + 48)?;
            if best.is_none_or(|b| txid > b.0) {
                best = Some((txid, page_size, root, pages));
            }
        }
        let (_, page_size, root, pages) = best.ok_or_else(|| BoltError("no meta page".into()))?;
        if page_size < 512 {
            return Err(BoltError(format!("page size {page_size}")));
        }
        Ok(Bolt {
            data,
            page_size,
            root,
            pages,
        })
    }

    fn page(&self, id: u64) -> Result<&'a [u8], BoltError> {
        let off = usize::try_from(id)
            .ok()
            .and_then(|i| i.checked_mul(self.page_size))
            .ok_or_else(|| BoltError(format!("page {id}")))?;
        let overflow = u32_at(self.data, off.saturating_add(12))? as usize;
        let len = (overflow + 1)
            .checked_mul(self.page_size)
            .ok_or_else(|| BoltError(format!("page {id} overflow")))?;
        slice(self.data, off, len)
    }

    /// Every (key, value, is_bucket) of the tree rooted at `page` (a page of
    /// the file, or an inline page), in key order.
    fn walk(
        &self,
        page: &'a [u8],
        depth: usize,
        out: &mut Vec<(&'a [u8], &'a [u8], bool)>,
    ) -> Result<(), BoltError> {
        if depth > 64 {
            return Err(BoltError("tree too deep".into()));
        }
        let flags = u16_at(page, 8)?;
        let count = u16_at(page, 10)? as usize;
        for i in 0..count {
            let e = PAGE_HEADER + i * 16;
            if flags & BRANCH != 0 {
                let child = u64_at(page, e + 8)?;
                self.walk(self.page(child)?, depth + 1, out)?;
            } else if flags & LEAF != 0 {
                let eflags = u32_at(page, e)?;
                let pos = u32_at(page, e + 4)? as usize;
                let ksize = u32_at(page, e + 8)? as usize;
                let vsize = u32_at(page, e + 12)? as usize;
                let key = slice(page, e + pos, ksize)?;
                let value = slice(page, e + pos + ksize, vsize)?;
                out.push((key, value, eflags & BUCKET_LEAF_FLAG != 0));
            } else {
                return Err(BoltError(format!("unexpected page flags {flags:#x}")));
            }
        }
        Ok(())
    }

    /// The entries of a bucket given its header (root page id, or 0 and an
    /// inline page after the 16-byte header).
    fn bucket(
        &self,
        header: &'a [u8],
        out: &mut Vec<(&'a [u8], &'a [u8], bool)>,
    ) -> Result<(), BoltError> {
        let root = u64_at(header, 0)?;
        if root == 0 {
            self.walk(slice(header, 16, header.len().saturating_sub(16))?, 0, out)
        } else {
            self.walk(self.page(root)?, 0, out)
        }
    }

    /// The top-level buckets: (name, their entries in key order).
    pub fn buckets(&self) -> Result<Vec<(&'a [u8], Entries<'a>)>, BoltError> {
        let mut top = Vec::new();
        self.walk(self.page(self.root)?, 0, &mut top)?;
        let mut out = Vec::new();
        for (name, header, is_bucket) in top {
            if !is_bucket {
                continue;
            }
            let mut entries = Vec::new();
            self.bucket(header, &mut entries)?;
            out.push((
                name,
                entries
                    .into_iter()
                    .map(|(k, v, nested)| (k, if nested { &[][..] } else { v }))
                    .collect(),
            ));
        }
        Ok(out)
    }

    /// bbolt's `tx.Size()`.
    pub fn size(&self) -> u64 {
        self.pages * self.page_size as u64
    }
}

/// CRC-32C (Castagnoli), as Go's `crc32.MakeTable(crc32.Castagnoli)`.
pub struct Crc32c {
    table: [u32; 256],
    crc: u32,
}

impl Default for Crc32c {
    fn default() -> Self {
        let mut table = [0u32; 256];
        for (i, slot) in table.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0x82F6_3B78 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *slot = c;
        }
        Crc32c { table, crc: !0 }
    }
}

impl Crc32c {
    /// Feed bytes.
    pub fn update(&mut self, data: &[u8]) {
        for b in data {
            self.crc = self.table[((self.crc ^ u32::from(*b)) & 0xff) as usize] ^ (self.crc >> 8);
        }
    }

    /// The checksum so far.
    pub fn sum(&self) -> u32 {
        !self.crc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        let mut c = Crc32c::default();
        c.update(b"123456789");
        assert_eq!(c.sum(), 0xE306_9283);
    }

    #[test]
    fn damaged_files_fail_without_panicking() {
        // A file with valid meta pages whose root points at junk, cut and
        // flipped in many ways: every read is bounds-checked.
        let mut data = vec![0u8; 4096 * 4];
        for (i, txid) in [(0usize, 1u64), (1, 2)] {
            let m = i * 4096 + PAGE_HEADER;
            data[m..m + 4].copy_from_slice(&MAGIC.to_le_bytes());
            data[m + 8..m + 12].copy_from_slice(&4096u32.to_le_bytes());
            data[m + 16..m + 24].copy_from_slice(&3u64.to_le_bytes());
            data[m + 40..m + 48].copy_from_slice(&4u64.to_le_bytes());
            data[m + 48..m + 56].copy_from_slice(&txid.to_le_bytes());
        }
        let root = 3 * 4096;
        data[root + 8..root + 10].copy_from_slice(&LEAF.to_le_bytes());
        data[root + 10..root + 12].copy_from_slice(&u16::MAX.to_le_bytes());
        for i in 0..4096 - PAGE_HEADER {
            data[root + PAGE_HEADER + i] = (i * 7919 % 251) as u8;
        }
        for cut in [100, 4096, 8192, 12300, data.len()] {
            if let Ok(db) = Bolt::open(&data[..cut]) {
                // Junk elements: an error or junk entries, never a panic.
                let _ = db.buckets();
            }
        }
    }

    #[test]
    fn garbage_is_refused() {
        assert!(Bolt::open(&[0u8; 100]).is_err());
        assert!(Bolt::open(&[0u8; 8192]).is_err());
    }
}
