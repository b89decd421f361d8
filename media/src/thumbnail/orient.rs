//! EXIF orientation (1..=8, including the mirrored 2, 4, 5, 7) applied to small RGB buffers.
//!
//! Orientation says how the stored pixels must be transformed to be upright:
//! 1 none, 2 mirror, 3 rotate 180°, 4 flip vertically, 5 transpose, 6 rotate 90° clockwise,
//! 7 transverse, 8 rotate 90° counter-clockwise.

use super::RgbBuf;

/// Side of the square tiles used for the axis-swapping orientations; keeps both the reads and
/// the writes of a tile in cache.
const TILE: usize = 32;

/// Whether `orientation` swaps width and height (5..=8).
pub(super) fn swaps_axes(orientation: u16) -> bool {
    (5..=8).contains(&orientation)
}

/// Returns the upright buffer; orientation 1 (or anything unknown) returns `img` unchanged.
pub(super) fn apply(img: RgbBuf, orientation: u16) -> RgbBuf {
    match orientation {
        2 => mirror_rows(img),
        3 => flip_rows(mirror_rows(img)),
        4 => flip_rows(img),
        5..=8 => swap_axes(&img, orientation),
        _ => img,
    }
}

fn mirror_rows(mut img: RgbBuf) -> RgbBuf {
    let row_len = img.width as usize * 3;
    if row_len == 0 {
        return img;
    }
    for row in img.data.chunks_exact_mut(row_len) {
        let w = row.len() / 3;
        for x in 0..w / 2 {
            let (a, b) = (x * 3, (w - 1 - x) * 3);
            for c in 0..3 {
                row.swap(a + c, b + c);
            }
        }
    }
    img
}

fn flip_rows(mut img: RgbBuf) -> RgbBuf {
    let row_len = img.width as usize * 3;
    let h = img.height as usize;
    for y in 0..h / 2 {
        let (top, bottom) = img.data.split_at_mut((h - 1 - y) * row_len);
        top[y * row_len..(y + 1) * row_len].swap_with_slice(&mut bottom[..row_len]);
    }
    img
}

/// Orientations 5..=8: output is `height`×`width`; each output pixel (ox, oy) reads the source
/// pixel given by [`source_of`].
fn swap_axes(img: &RgbBuf, orientation: u16) -> RgbBuf {
    let (sw, sh) = (img.width as usize, img.height as usize);
    let (ow, oh) = (sh, sw);
    let mut out = vec![0u8; img.data.len()];
    // Source pixel index of output (ox, oy) is linear in ox: `first(oy) + ox * step`, so the
    // inner loop is a strided gather with no per-pixel branching.
    let (step, first): (isize, Box<dyn Fn(usize) -> usize>) = match orientation {
        5 => (sw as isize, Box::new(|oy| oy)),
        6 => (-(sw as isize), Box::new(move |oy| (sh - 1) * sw + oy)),
        7 => (
            -(sw as isize),
            Box::new(move |oy| (sh - 1) * sw + (sw - 1 - oy)),
        ),
        _ => (sw as isize, Box::new(move |oy| sw - 1 - oy)), // 8
    };
    for ty in (0..oh).step_by(TILE) {
        for tx in (0..ow).step_by(TILE) {
            let tx_end = (tx + TILE).min(ow);
            for oy in ty..(ty + TILE).min(oh) {
                let base = first(oy) as isize;
                let row = &mut out[(oy * ow + tx) * 3..(oy * ow + tx_end) * 3];
                for (i, px) in row.chunks_exact_mut(3).enumerate() {
                    let s = (base + (tx + i) as isize * step) as usize * 3;
                    px.copy_from_slice(&img.data[s..s + 3]);
                }
            }
        }
    }
    RgbBuf {
        data: out,
        width: img.height,
        height: img.width,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3×2 image whose pixels are numbered 0..6 row by row (value in every channel).
    fn numbered() -> RgbBuf {
        let data = (0u8..6).flat_map(|v| [v, v, v]).collect();
        RgbBuf {
            data,
            width: 3,
            height: 2,
        }
    }

    fn values(img: &RgbBuf) -> Vec<u8> {
        img.data.chunks_exact(3).map(|p| p[0]).collect()
    }

    #[test]
    fn all_eight_orientations() {
        // Stored:      Expected upright result (rows):
        //  0 1 2
        //  3 4 5
        let cases: [(u16, (u32, u32), &[u8]); 8] = [
            (1, (3, 2), &[0, 1, 2, 3, 4, 5]),
            (2, (3, 2), &[2, 1, 0, 5, 4, 3]),
            (3, (3, 2), &[5, 4, 3, 2, 1, 0]),
            (4, (3, 2), &[3, 4, 5, 0, 1, 2]),
            (5, (2, 3), &[0, 3, 1, 4, 2, 5]),
            (6, (2, 3), &[3, 0, 4, 1, 5, 2]),
            (7, (2, 3), &[5, 2, 4, 1, 3, 0]),
            (8, (2, 3), &[2, 5, 1, 4, 0, 3]),
        ];
        for (o, (w, h), expected) in cases {
            let out = apply(numbered(), o);
            assert_eq!((out.width, out.height), (w, h), "orientation {o}");
            assert_eq!(values(&out), expected, "orientation {o}");
            assert_eq!(swaps_axes(o), w != 3);
        }
    }

    #[test]
    fn odd_sizes_and_single_pixels() {
        let one = RgbBuf {
            data: vec![7, 8, 9],
            width: 1,
            height: 1,
        };
        for o in 1..=8 {
            assert_eq!(apply(one.clone(), o).data, vec![7, 8, 9]);
        }
        let big = RgbBuf {
            data: vec![1; 70 * 33 * 3],
            width: 70,
            height: 33,
        };
        let out = apply(big, 6);
        assert_eq!((out.width, out.height), (33, 70));
    }
}
