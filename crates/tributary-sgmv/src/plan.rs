//! The work description the SGMV kernels read (one `u32` buffer per call), built on the host.
//!
//! Kept free of any device so the layout can be unit-tested; `shrink.wgsl` documents the same
//! layout from the kernel's side.

use tributary_wgsl::fold_grid;

use crate::SgmvError;
use crate::pages::{PAGE_FLOATS, pages_for};

/// Token rows per work item; must match `ROWS` in the kernels.
pub const ROWS_PER_ITEM: usize = 4;
/// Rank indices per shrink work item (the kernel's 16 slots of 16 lanes).
pub const RANKS_PER_ITEM: usize = 16;
pub const HEADER_LEN: usize = 16;

/// An adapter pair laid out in pool pages.
#[derive(Debug, Clone, PartialEq)]
pub struct PagedMatrix {
    pub rank: usize,
    pub fan_in: usize,
    pub fan_out: usize,
    pub scale: f32,
    /// `rank × pages_for(fan_in)` page ids: page p of row j of A at `j · pages_in + p`.
    pub a_pages: Vec<u32>,
    /// `rank × pages_for(fan_out)` page ids for the rows of Bᵀ.
    pub bt_pages: Vec<u32>,
}

/// One segment of the batch with its pair for this projection resolved.
#[derive(Debug, Clone)]
pub struct PlannedSegment<'a> {
    pub first_row: usize,
    pub rows: usize,
    pub matrix: &'a PagedMatrix,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub meta: Vec<u32>,
    pub shrink_items: usize,
    pub expand_items: usize,
    pub shrink_grid: (u32, u32),
    pub expand_grid: (u32, u32),
    /// f32s of rank values between the kernels (Σ rows · rank; no padding to the largest rank).
    pub v_len: usize,
}

/// Builds the kernels' work list for a batch of `(fan_in, fan_out)` rows. Segments without a
/// pair for this projection are simply not listed.
pub fn plan(
    (fan_in, fan_out): (usize, usize),
    segments: &[PlannedSegment<'_>],
    pages_per_chunk: u32,
    max_per_dim: u32,
) -> Result<Plan, SgmvError> {
    let (pages_in, pages_out) = (pages_for(fan_in), pages_for(fan_out));
    let mut seg_words = Vec::with_capacity(segments.len() * 8);
    let mut shrink = Vec::new();
    let mut expand = Vec::new();
    let mut tables: Vec<u32> = Vec::new();
    let mut v_len = 0usize;
    let table_base = HEADER_LEN;
    // Tables go after the header in a first pass' order; their offsets are fixed up below once
    // the lengths of the segment and item lists are known.
    let mut table_offsets = Vec::with_capacity(segments.len());
    for (index, s) in segments.iter().enumerate() {
        let m = s.matrix;
        if (m.fan_in, m.fan_out) != (fan_in, fan_out) {
            return Err(SgmvError::Mismatch(format!(
                "an adapter pair is {}→{}, the batch is {fan_in}→{fan_out}",
                m.fan_in, m.fan_out
            )));
        }
        if m.a_pages.len() != m.rank * pages_in || m.bt_pages.len() != m.rank * pages_out {
            return Err(SgmvError::Pool(format!(
                "page table of a rank-{} pair has {} + {} pages, expected {} + {}",
                m.rank,
                m.a_pages.len(),
                m.bt_pages.len(),
                m.rank * pages_in,
                m.rank * pages_out
            )));
        }
        let a_at = tables.len();
        tables.extend_from_slice(&m.a_pages);
        let bt_at = tables.len();
        tables.extend_from_slice(&m.bt_pages);
        table_offsets.push((a_at, bt_at));
        seg_words.extend_from_slice(&[
            s.first_row as u32,
            s.rows as u32,
            m.rank as u32,
            v_len as u32,
            m.scale.to_bits(),
            0,
            0,
            0,
        ]);
        v_len += s.rows * m.rank;
        for row0 in (0..s.rows).step_by(ROWS_PER_ITEM) {
            let rows = (s.rows - row0).min(ROWS_PER_ITEM) as u32;
            for j0 in (0..m.rank).step_by(RANKS_PER_ITEM) {
                shrink.extend_from_slice(&[index as u32, row0 as u32, rows, j0 as u32]);
            }
            for tile in 0..pages_out {
                expand.extend_from_slice(&[index as u32, row0 as u32, rows, tile as u32]);
            }
        }
    }
    let seg_at = table_base;
    let shrink_at = seg_at + seg_words.len();
    let expand_at = shrink_at + shrink.len();
    let tables_at = expand_at + expand.len();
    for (i, (a_at, bt_at)) in table_offsets.into_iter().enumerate() {
        seg_words[i * 8 + 5] = (tables_at + a_at) as u32;
        seg_words[i * 8 + 6] = (tables_at + bt_at) as u32;
    }
    let (shrink_items, expand_items) = (shrink.len() / 4, expand.len() / 4);
    let too_many =
        |items| SgmvError::Pool(format!("{items} work items do not fit the device's grid"));
    let shrink_grid = fold_grid(shrink_items, max_per_dim).ok_or_else(|| too_many(shrink_items))?;
    let expand_grid = fold_grid(expand_items, max_per_dim).ok_or_else(|| too_many(expand_items))?;
    let total = tables_at + tables.len();
    if total > u32::MAX as usize || v_len > u32::MAX as usize {
        return Err(SgmvError::Pool(
            "the batch is too large for 32-bit indices".into(),
        ));
    }
    let mut meta = Vec::with_capacity(total);
    meta.extend_from_slice(&[
        fan_in as u32,
        fan_out as u32,
        pages_in as u32,
        pages_out as u32,
        pages_per_chunk,
        shrink_items as u32,
        expand_items as u32,
        shrink_grid.0,
        expand_grid.0,
        shrink_at as u32,
        expand_at as u32,
        seg_at as u32,
    ]);
    meta.resize(HEADER_LEN, 0);
    meta.extend(seg_words);
    meta.extend(shrink);
    meta.extend(expand);
    meta.extend(tables);
    Ok(Plan {
        meta,
        shrink_items,
        expand_items,
        shrink_grid,
        expand_grid,
        v_len,
    })
}

/// The pages of one pair as the pool stores them: each row of A, then each row of Bᵀ, cut into
/// zero-padded pages, in the order of [`PagedMatrix::a_pages`] and [`PagedMatrix::bt_pages`].
pub fn page_contents(l: &crate::LoraMatrices) -> Vec<f32> {
    let (pages_in, pages_out) = (pages_for(l.fan_in), pages_for(l.fan_out));
    let mut out = vec![0.0f32; (pages_in + pages_out) * l.rank * PAGE_FLOATS];
    for (j, a_row) in l.a.chunks_exact(l.fan_in).enumerate() {
        let at = j * pages_in * PAGE_FLOATS;
        out[at..at + l.fan_in].copy_from_slice(a_row);
    }
    let bt_base = l.rank * pages_in * PAGE_FLOATS;
    for j in 0..l.rank {
        let at = bt_base + j * pages_out * PAGE_FLOATS;
        for o in 0..l.fan_out {
            out[at + o] = l.b[o * l.rank + j];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(rank: usize, fan_in: usize, fan_out: usize, first_page: u32) -> PagedMatrix {
        let n_a = rank * pages_for(fan_in);
        let n_b = rank * pages_for(fan_out);
        PagedMatrix {
            rank,
            fan_in,
            fan_out,
            scale: 0.5,
            a_pages: (first_page..first_page + n_a as u32).collect(),
            bt_pages: (first_page + n_a as u32..first_page + (n_a + n_b) as u32).collect(),
        }
    }

    #[test]
    fn work_follows_each_segments_own_rank() {
        let (r1, r128) = (matrix(1, 300, 600, 0), matrix(128, 300, 600, 1000));
        let segs = [
            PlannedSegment {
                first_row: 0,
                rows: 5,
                matrix: &r1,
            },
            PlannedSegment {
                first_row: 7,
                rows: 1,
                matrix: &r128,
            },
        ];
        let p = plan((300, 600), &segs, 64, 65_535).unwrap();
        // Rank 1, 5 rows: 2 row tiles × 1 rank group; rank 128, 1 row: 1 × 8.
        assert_eq!(p.shrink_items, 2 + 8);
        // 600 outputs are 3 pages: 3 tiles per row tile.
        assert_eq!(p.expand_items, 2 * 3 + 3);
        assert_eq!(p.v_len, 5 + 128);
        let m = &p.meta;
        let seg1 = m[11] as usize + 8;
        assert_eq!(&m[seg1..seg1 + 4], &[7, 1, 128, 5]);
        assert_eq!(f32::from_bits(m[seg1 + 4]), 0.5);
        // The second segment's A table starts with its first page id.
        assert_eq!(m[m[seg1 + 5] as usize], 1000);
        assert_eq!(m[m[seg1 + 6] as usize], 1000 + 128 * 2);
    }

    #[test]
    fn mismatched_pairs_are_refused() {
        let m = matrix(2, 64, 64, 0);
        let segs = [PlannedSegment {
            first_row: 0,
            rows: 1,
            matrix: &m,
        }];
        assert!(matches!(
            plan((64, 128), &segs, 8, 65_535),
            Err(SgmvError::Mismatch(_))
        ));
    }

    #[test]
    fn pages_hold_rows_of_a_and_of_b_transposed() {
        // rank 2, 3 → 2: A = [[1,2,3],[4,5,6]], B = [[7,8],[9,10]].
        let l = crate::LoraMatrices::new(
            (3, 2),
            2,
            vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            vec![7.0, 8.0, 9.0, 10.0],
            1.0,
        )
        .unwrap();
        let c = page_contents(&l);
        assert_eq!(c.len(), 4 * PAGE_FLOATS);
        assert_eq!(&c[0..4], &[1.0, 2.0, 3.0, 0.0]);
        assert_eq!(&c[PAGE_FLOATS..PAGE_FLOATS + 3], &[4.0, 5.0, 6.0]);
        // Row 0 of Bᵀ is column 0 of B.
        assert_eq!(&c[2 * PAGE_FLOATS..2 * PAGE_FLOATS + 3], &[7.0, 9.0, 0.0]);
        assert_eq!(&c[3 * PAGE_FLOATS..3 * PAGE_FLOATS + 2], &[8.0, 10.0]);
    }
}
