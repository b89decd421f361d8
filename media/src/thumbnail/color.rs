//! Colour handling: alpha flattening onto white, and conversion of embedded ICC profiles to
//! sRGB with moxcms (already in the tree through `image`), applied to the preview-sized buffer.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use moxcms::{ColorProfile, DataColorSpace, Layout, TransformExecutor, TransformOptions};

use super::RgbBuf;

type Transform = Arc<dyn TransformExecutor<u8> + Send + Sync>;

/// Building a transform parses the profile and fills lookup tables; photos from one camera share
/// one profile, so keep a few (keyed by the profile bytes).
static TRANSFORMS: LazyLock<Mutex<HashMap<Vec<u8>, Option<Transform>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
const CACHE_ENTRIES: usize = 32;
/// Profiles bigger than this are not worth parsing for a thumbnail (and may be hostile).
const MAX_PROFILE_BYTES: usize = 4 << 20;
/// Colorant tolerance for "this is already sRGB" (XYZ units).
const SRGB_TOLERANCE: f64 = 0.002;

/// Converts `img` in place from the colour space described by `icc` to sRGB. Best effort: no
/// profile, an sRGB profile, a non-RGB profile or any failure leaves the pixels as they are,
/// which is the usual "assume sRGB" behaviour of browsers.
pub(super) fn to_srgb(img: &mut RgbBuf, icc: Option<&[u8]>) {
    let Some(icc) = icc.filter(|p| !p.is_empty() && p.len() <= MAX_PROFILE_BYTES) else {
        return;
    };
    let Some(transform) = transform_for(icc) else {
        return;
    };
    let mut out = vec![0u8; img.data.len()];
    if transform.transform(&img.data, &mut out).is_ok() {
        img.data = out;
    }
}

fn transform_for(icc: &[u8]) -> Option<Transform> {
    if let Ok(cache) = TRANSFORMS.lock()
        && let Some(hit) = cache.get(icc)
    {
        return hit.clone();
    }
    let built = build_transform(icc);
    if let Ok(mut cache) = TRANSFORMS.lock() {
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(icc.to_vec(), built.clone());
    }
    built
}

fn build_transform(icc: &[u8]) -> Option<Transform> {
    let source = ColorProfile::new_from_slice(icc).ok()?;
    if source.color_space != DataColorSpace::Rgb || is_srgb(&source) {
        return None;
    }
    let srgb = ColorProfile::new_srgb();
    let transform = source
        .create_transform_8bit(Layout::Rgb, &srgb, Layout::Rgb, TransformOptions::default())
        .ok()?;
    Some(transform)
}

/// Same primaries as sRGB (tone curves of "sRGB" profiles differ only negligibly).
fn is_srgb(profile: &ColorProfile) -> bool {
    let srgb = ColorProfile::new_srgb();
    let close = |a: moxcms::Xyzd, b: moxcms::Xyzd| {
        (a.x - b.x).abs() < SRGB_TOLERANCE
            && (a.y - b.y).abs() < SRGB_TOLERANCE
            && (a.z - b.z).abs() < SRGB_TOLERANCE
    };
    close(profile.red_colorant, srgb.red_colorant)
        && close(profile.green_colorant, srgb.green_colorant)
        && close(profile.blue_colorant, srgb.blue_colorant)
}

/// RGBA8 → RGB8 composited onto white (what a viewer shows for transparent areas).
pub(super) fn flatten_rgba(rgba: &[u8], width: u32, height: u32) -> RgbBuf {
    let mut data = Vec::with_capacity(rgba.len() / 4 * 3);
    for px in rgba.chunks_exact(4) {
        let a = u32::from(px[3]);
        for &c in &px[..3] {
            // c·a + 255·(255 − a), rounded, over 255.
            let v = (u32::from(c) * a + 255 * (255 - a) + 127) / 255;
            data.push(u8::try_from(v).unwrap_or(u8::MAX));
        }
    }
    RgbBuf {
        data,
        width,
        height,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpha_flattens_onto_white() {
        let rgba = [0, 0, 0, 0, 0, 0, 0, 255, 200, 100, 0, 128];
        let rgb = flatten_rgba(&rgba, 3, 1);
        assert_eq!(rgb.data, vec![255, 255, 255, 0, 0, 0, 227, 177, 127]);
    }

    #[test]
    fn srgb_profile_is_left_alone_and_garbage_is_ignored() {
        assert!(is_srgb(&ColorProfile::new_srgb()));
        let mut img = RgbBuf {
            data: vec![10, 20, 30],
            width: 1,
            height: 1,
        };
        to_srgb(&mut img, Some(b"not a profile"));
        to_srgb(&mut img, None);
        assert_eq!(img.data, vec![10, 20, 30]);
    }

    #[test]
    fn wide_gamut_profile_is_converted() {
        let p3 = ColorProfile::new_display_p3();
        let icc = p3.encode().unwrap();
        // Pure P3 red lies outside sRGB: it must come out clipped, with less green/blue than red.
        let mut img = RgbBuf {
            data: vec![255, 0, 0, 128, 128, 128],
            width: 2,
            height: 1,
        };
        to_srgb(&mut img, Some(&icc));
        assert_eq!(img.data[0], 255);
        // Neutral grey stays (nearly) neutral.
        let grey = &img.data[3..6];
        assert!(grey.iter().all(|v| v.abs_diff(128) <= 2), "{grey:?}");
    }
}
