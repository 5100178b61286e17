//! `run --image FILE`: pictures sent with the prompt as image blocks, checked before claude
//! starts.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use base64::Engine;
use serde_json::{Value, json};

/// Largest image accepted: what the Messages API takes per image.
pub const MAX_IMAGE_BYTES: u64 = 5 * 1024 * 1024;

/// The media type of an image, told from its first bytes (never from its name).
pub fn media_type(bytes: &[u8]) -> Option<&'static str> {
    match bytes {
        [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, ..] => Some("image/png"),
        [0xff, 0xd8, 0xff, ..] => Some("image/jpeg"),
        [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Some("image/gif"),
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => Some("image/webp"),
        _ => None,
    }
}

/// An image's width and height from its header, if it has one with both above zero (and, for
/// a PNG, image data after it): a file with only a valid first few bytes is no image, and
/// Claude Code drops it without a word.
pub fn dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    let be16 = |at: usize| Some(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?) as u32);
    let le16 = |at: usize| Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?) as u32);
    let be32 = |at: usize| Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    let (w, h) = match media_type(bytes)? {
        "image/png" => {
            let has_data = bytes.windows(4).skip(16).any(|w| w == b"IDAT");
            if bytes.get(12..16)? != b"IHDR" || !has_data {
                return None;
            }
            (be32(16)?, be32(20)?)
        }
        "image/gif" => (le16(6)?, le16(8)?),
        "image/jpeg" => {
            // The first start-of-frame segment: FF Cn (not C4, C8, CC), length, precision, h, w.
            let mut at = 2;
            loop {
                let (0xff, marker, len) = (*bytes.get(at)?, *bytes.get(at + 1)?, be16(at + 2)?) else {
                    return None;
                };
                if (0xc0..=0xcf).contains(&marker) && ![0xc4, 0xc8, 0xcc].contains(&marker) {
                    break (be16(at + 7)?, be16(at + 5)?);
                }
                at += 2 + len as usize;
            }
        }
        _ => match bytes.get(12..16)? {
            b"VP8 " => (le16(26)? & 0x3fff, le16(28)? & 0x3fff),
            b"VP8L" => {
                let bits = u32::from_le_bytes(bytes.get(21..25)?.try_into().ok()?);
                ((bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1)
            }
            b"VP8X" => {
                let le24 = |at: usize| {
                    Some(u32::from_le_bytes([*bytes.get(at)?, *bytes.get(at + 1)?, *bytes.get(at + 2)?, 0]))
                };
                (le24(24)? + 1, le24(27)? + 1)
            }
            _ => return None,
        },
    };
    (w > 0 && h > 0).then_some((w, h))
}

/// Reads `path` and returns it as an image block (base64), or says why not: missing,
/// unreadable, not a regular file (a FIFO is not waited on), over [`MAX_IMAGE_BYTES`], not a
/// PNG, JPEG, GIF or WebP, or one without an image in it (see [`dimensions`]).
pub fn image_block(path: &Path) -> Result<Value> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .with_context(|| format!("could not read --image {}", path.display()))?;
    let meta = file.metadata().with_context(|| format!("could not read --image {}", path.display()))?;
    if !meta.is_file() {
        bail!("--image {} is not a file", path.display());
    }
    if meta.len() > MAX_IMAGE_BYTES {
        bail!(
            "--image {} is {} bytes; at most {MAX_IMAGE_BYTES} (5 MB) are sent",
            path.display(),
            meta.len()
        );
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The size may change under us: read at most one byte past the limit to notice.
    file.take(MAX_IMAGE_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("could not read --image {}", path.display()))?;
    if bytes.len() as u64 > MAX_IMAGE_BYTES {
        bail!("--image {} is over {MAX_IMAGE_BYTES} bytes (5 MB)", path.display());
    }
    let Some(media_type) = media_type(&bytes) else {
        bail!("--image {} is not a PNG, JPEG, GIF or WebP image", path.display());
    };
    if dimensions(&bytes).is_none() {
        bail!(
            "--image {} starts like a {media_type} but holds no image (no size, or no image data); \
             Claude Code would drop it",
            path.display()
        );
    }
    let data = base64::engine::general_purpose::STANDARD.encode(&bytes);
    Ok(json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1x1 PNG.
    fn tiny_png() -> Vec<u8> {
        let hex = "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c49444154789c63f8cfc0000003010100c9fe92ef0000000049454e44ae426082";
        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn sizes_come_from_the_headers() {
        assert_eq!(dimensions(&tiny_png()), Some((1, 1)));
        let mut gif = b"GIF89a".to_vec();
        gif.extend([3, 0, 2, 0]);
        assert_eq!(dimensions(&gif), Some((3, 2)));
        assert_eq!(dimensions(b"GIF89a\0\0\0\0"), None);
        // JPEG: SOI, an APP0 segment, then SOF0 of 640x480.
        let jpeg = [0xff, 0xd8, 0xff, 0xe0, 0, 4, 0, 0, 0xff, 0xc0, 0, 11, 8, 0x01, 0xe0, 0x02, 0x80, 1];
        assert_eq!(dimensions(&jpeg), Some((640, 480)));
        assert_eq!(dimensions(&[0xff, 0xd8, 0xff, 0xe0]), None);
        let mut webp = b"RIFF\0\0\0\0WEBPVP8X".to_vec();
        webp.resize(30, 0);
        webp[24] = 99; // 100 wide, 1 high
        assert_eq!(dimensions(&webp), Some((100, 1)));
    }

    #[test]
    fn image_types_come_from_the_bytes() {
        assert_eq!(media_type(b"\x89PNG\r\n\x1a\nrest"), Some("image/png"));
        assert_eq!(media_type(b"\xff\xd8\xff\xe0"), Some("image/jpeg"));
        assert_eq!(media_type(b"GIF89a..."), Some("image/gif"));
        assert_eq!(media_type(b"GIF87a..."), Some("image/gif"));
        assert_eq!(media_type(b"RIFF\x10\0\0\0WEBPVP8 "), Some("image/webp"));
        for not in [&b""[..], b"\x89PN", b"RIFF\x10\0\0\0WAVE", b"%PDF-1.7", b"hello"] {
            assert_eq!(media_type(not), None, "{not:?}");
        }
    }

    #[test]
    fn an_image_becomes_a_base64_block_and_others_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("a.png");
        std::fs::write(&png, tiny_png()).unwrap();
        let block = image_block(&png).unwrap();
        assert_eq!(block["source"]["media_type"], "image/png");
        use base64::Engine;
        assert_eq!(block["source"]["data"], base64::engine::general_purpose::STANDARD.encode(tiny_png()));
        // A PNG header and nothing after it: refused, not sent to be dropped.
        let empty = dir.path().join("empty.png");
        std::fs::write(&empty, b"\x89PNG\r\n\x1a\n1234").unwrap();
        assert!(image_block(&empty).unwrap_err().to_string().contains("holds no image"));
        std::fs::write(&empty, &tiny_png()[..33]).unwrap();
        assert!(image_block(&empty).unwrap_err().to_string().contains("holds no image"), "IHDR, no IDAT");
        // A FIFO nobody writes to is refused at once, not waited on.
        let fifo = dir.path().join("pipe.png");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(image_block(&fifo).unwrap_err().to_string().contains("not a file"));
        let text = dir.path().join("b.png");
        std::fs::write(&text, b"not a picture").unwrap();
        assert!(image_block(&text).unwrap_err().to_string().contains("not a PNG"));
        let big = dir.path().join("c.png");
        let file = std::fs::File::create(&big).unwrap();
        file.set_len(MAX_IMAGE_BYTES + 1).unwrap();
        assert!(image_block(&big).unwrap_err().to_string().contains("5 MB"));
        assert!(image_block(&dir.path().join("none.png")).is_err());
        assert!(image_block(dir.path()).is_err());
    }
}
