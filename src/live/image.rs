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

/// Reads `path` and returns it as an image block (base64), or says why not: missing,
/// unreadable, over [`MAX_IMAGE_BYTES`], or not a PNG, JPEG, GIF or WebP.
pub fn image_block(path: &Path) -> Result<Value> {
    let file =
        std::fs::File::open(path).with_context(|| format!("could not read --image {}", path.display()))?;
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
    let data = base64::engine::general_purpose::STANDARD.encode(&bytes);
    Ok(json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        std::fs::write(&png, b"\x89PNG\r\n\x1a\n1234").unwrap();
        let block = image_block(&png).unwrap();
        assert_eq!(block["source"]["media_type"], "image/png");
        assert_eq!(block["source"]["data"], "iVBORw0KGgoxMjM0");
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
