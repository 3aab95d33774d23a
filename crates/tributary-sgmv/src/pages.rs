//! Page bookkeeping for the adapter pool, kept apart from any device so it can be tested (and
//! reasoned about) on its own.
//!
//! The pool is a few storage buffers ("chunks"), each no larger than the device's
//! `maxStorageBufferBindingSize`, cut into pages of [`PAGE_FLOATS`] f32s. A LoRA vector (a row of
//! A, `fan_in` long, or a row of Bᵀ, `fan_out` long) spans `ceil(len / PAGE_FLOATS)` pages that need
//! not be neighbours, so adapters of any rank come and go without fragmenting the pool (S-LoRA's
//! unified paging), and no vector ever straddles two bindings.

use std::collections::BTreeSet;

use crate::SgmvError;

/// f32s per page. Must match `PAGE` in the WGSL kernels, whose tiles are one page wide.
pub const PAGE_FLOATS: usize = 256;
pub const PAGE_BYTES: u64 = (PAGE_FLOATS * size_of::<f32>()) as u64;
/// Storage bindings the kernels declare for the pool. With the kernels' three other buffers
/// this stays within WebGPU's guaranteed 8 storage buffers per shader stage.
pub const MAX_CHUNKS: usize = 4;

/// Pages a vector of `len` floats occupies.
pub fn pages_for(len: usize) -> usize {
    len.div_ceil(PAGE_FLOATS)
}

/// How large the pool may grow and how it is cut into bindings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolGeometry {
    pub pages_per_chunk: u32,
    pub max_chunks: u32,
}

impl PoolGeometry {
    /// Fits `capacity_bytes` of pages into at most [`MAX_CHUNKS`] bindings of at most
    /// `max_binding_bytes` each. A capacity over one binding is split, not refused; one over all
    /// four is refused, naming the limit. Chunks are a quarter of the capacity where the limit
    /// allows, so a pool that holds little takes little (chunks are allocated as they fill).
    pub fn new(capacity_bytes: u64, max_binding_bytes: u64) -> Result<Self, SgmvError> {
        let capacity_pages = capacity_bytes / PAGE_BYTES;
        // Page ids are u32 and offsets within a chunk are u32 float indices in WGSL.
        let per_binding =
            (max_binding_bytes / PAGE_BYTES).min(u64::from(u32::MAX) / PAGE_FLOATS as u64);
        if capacity_pages == 0 || per_binding == 0 {
            return Err(SgmvError::Pool(format!(
                "a pool of {capacity_bytes} bytes with bindings of {max_binding_bytes} bytes holds no {PAGE_BYTES}-byte page"
            )));
        }
        let pages_per_chunk = per_binding.min(capacity_pages.div_ceil(MAX_CHUNKS as u64));
        let chunks = capacity_pages.div_ceil(pages_per_chunk);
        if chunks > MAX_CHUNKS as u64 {
            return Err(SgmvError::Pool(format!(
                "{capacity_bytes} bytes need {chunks} bindings of at most {max_binding_bytes} bytes; the kernels bind {MAX_CHUNKS}"
            )));
        }
        Ok(Self {
            pages_per_chunk: pages_per_chunk as u32,
            max_chunks: chunks as u32,
        })
    }

    pub fn chunk_bytes(&self) -> u64 {
        u64::from(self.pages_per_chunk) * PAGE_BYTES
    }

    pub fn capacity_pages(&self) -> u64 {
        u64::from(self.pages_per_chunk) * u64::from(self.max_chunks)
    }

    /// (chunk, float offset within the chunk) of `page`.
    pub fn locate(&self, page: u32) -> (u32, u32) {
        let chunk = page / self.pages_per_chunk;
        let offset = (page % self.pages_per_chunk) * PAGE_FLOATS as u32;
        (chunk, offset)
    }
}

/// Hands out page ids. Chunks come into use one at a time, only when the ones in use are full,
/// so a pool sized for the worst case costs memory only as adapters arrive.
#[derive(Debug, Clone)]
pub struct PageAllocator {
    geometry: PoolGeometry,
    chunks_in_use: u32,
    /// Lowest ids first, so placement is reproducible.
    free: BTreeSet<u32>,
}

impl PageAllocator {
    pub fn new(geometry: PoolGeometry) -> Self {
        Self {
            geometry,
            chunks_in_use: 0,
            free: BTreeSet::new(),
        }
    }

    pub fn geometry(&self) -> PoolGeometry {
        self.geometry
    }

    pub fn chunks_in_use(&self) -> u32 {
        self.chunks_in_use
    }

    pub fn free_pages(&self) -> u64 {
        self.free.len() as u64
            + u64::from(self.geometry.max_chunks - self.chunks_in_use)
                * u64::from(self.geometry.pages_per_chunk)
    }

    /// `n` pages, all or none. Returns them with the number of chunks that came into use for
    /// them (the caller creates those buffers).
    pub fn alloc(&mut self, n: usize) -> Result<(Vec<u32>, u32), SgmvError> {
        if n as u64 > self.free_pages() {
            return Err(SgmvError::PoolFull {
                needed_bytes: n as u64 * PAGE_BYTES,
                free_bytes: self.free_pages() * PAGE_BYTES,
            });
        }
        let mut new_chunks = 0;
        while self.free.len() < n {
            let first = self.chunks_in_use * self.geometry.pages_per_chunk;
            self.free
                .extend(first..first + self.geometry.pages_per_chunk);
            self.chunks_in_use += 1;
            new_chunks += 1;
        }
        let pages = (0..n)
            .map(|_| self.free.pop_first().expect("counted above"))
            .collect();
        Ok((pages, new_chunks))
    }

    /// Returns pages to the pool. Ids it never handed out are ignored.
    pub fn free(&mut self, pages: &[u32]) {
        let limit = self.chunks_in_use * self.geometry.pages_per_chunk;
        self.free
            .extend(pages.iter().copied().filter(|&p| p < limit));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn capacity_over_one_binding_is_split_across_chunks() {
        // 12 pages, at most 3 per binding → 4 chunks of 3.
        let g = PoolGeometry::new(12 * PAGE_BYTES, 3 * PAGE_BYTES).unwrap();
        let want = PoolGeometry {
            pages_per_chunk: 3,
            max_chunks: 4,
        };
        assert_eq!(g, want);
        assert_eq!(g.locate(5), (1, 2 * PAGE_FLOATS as u32));
        // 10 pages at 2 per binding would need 5 bindings: refused with the reason.
        let err = PoolGeometry::new(10 * PAGE_BYTES, 2 * PAGE_BYTES).unwrap_err();
        assert!(err.to_string().contains("5 bindings"), "{err}");
        // WebGPU's default 128 MiB binding and a 256 MiB pool: four chunks of 64 MiB.
        let g = PoolGeometry::new(256 << 20, 128 << 20).unwrap();
        assert_eq!((g.max_chunks, g.chunk_bytes()), (4, 64 << 20));
        // A two-page pool: two one-page chunks.
        assert_eq!(
            PoolGeometry::new(2 * PAGE_BYTES, 1 << 20)
                .unwrap()
                .max_chunks,
            2
        );
    }

    #[test]
    fn chunks_come_into_use_only_when_needed() {
        let mut a = PageAllocator::new(PoolGeometry::new(12 * PAGE_BYTES, 4 * PAGE_BYTES).unwrap());
        assert_eq!(a.chunks_in_use(), 0);
        let (p, new) = a.alloc(3).unwrap();
        assert_eq!((p, new), (vec![0, 1, 2], 1));
        let (p, new) = a.alloc(6).unwrap();
        assert_eq!((p, new), (vec![3, 4, 5, 6, 7, 8], 2));
        assert!(matches!(a.alloc(4), Err(SgmvError::PoolFull { .. })));
        a.free(&[1, 2, 99]);
        assert_eq!(a.alloc(5).unwrap().0, vec![1, 2, 9, 10, 11]);
    }

    proptest! {
        #[test]
        fn pages_are_never_handed_out_twice(ops in proptest::collection::vec((any::<bool>(), 1usize..20), 1..60)) {
            let mut a = PageAllocator::new(PoolGeometry::new(64 * PAGE_BYTES, 16 * PAGE_BYTES).unwrap());
            let mut held: Vec<Vec<u32>> = Vec::new();
            for (free, n) in ops {
                if free && !held.is_empty() {
                    let pages = held.swap_remove(n % held.len());
                    a.free(&pages);
                } else if let Ok((pages, _)) = a.alloc(n) {
                    held.push(pages);
                }
                let mut all: Vec<u32> = held.iter().flatten().copied().collect();
                let total = all.len();
                all.sort_unstable();
                all.dedup();
                prop_assert_eq!(all.len(), total);
                prop_assert!(all.iter().all(|&p| p < 64));
                prop_assert_eq!(a.free_pages() + total as u64, 64);
            }
        }
    }
}
