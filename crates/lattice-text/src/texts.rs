//! Texts files: one text per line, or JSON lines (`.jsonl`) of `{"id": ..., "text": "..."}`.
//! Every line is one text (an empty line is an empty text); a final newline ends the last
//! line and starts none. Ids are the JSON `id` (a string or a number) or the line number.

use std::path::Path;

use serde::Deserialize;

use crate::TextError;

/// Texts and their ids, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Texts {
    pub ids: Vec<String>,
    pub texts: Vec<String>,
}

impl Texts {
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }
}

/// Reads a texts file; `.jsonl` files as JSON lines, any other as plain lines.
pub fn read_texts(path: &Path) -> Result<Texts, TextError> {
    let bytes = std::fs::read(path).map_err(|source| TextError::Read {
        path: path.into(),
        source,
    })?;
    let jsonl = path.extension().is_some_and(|e| e == "jsonl");
    let mut out = Texts::default();
    for (i, raw) in lines(&bytes).enumerate() {
        let line = i + 1;
        let text = std::str::from_utf8(raw).map_err(|e| TextError::NotUtf8 {
            path: path.into(),
            line,
            column: e.valid_up_to() + 1,
        })?;
        let (id, text) = if jsonl {
            if text.trim().is_empty() {
                continue;
            }
            json_line(text).map_err(|message| TextError::JsonLine {
                path: path.into(),
                line,
                message,
            })?
        } else {
            (None, text.to_string())
        };
        out.ids.push(id.unwrap_or_else(|| line.to_string()));
        out.texts.push(text);
    }
    if out.is_empty() {
        return Err(TextError::NoTexts { path: path.into() });
    }
    Ok(out)
}

/// The file's lines without their `\n` or `\r\n`; no line after a final newline.
fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let none = bytes.is_empty();
    body.split(|&b| b == b'\n')
        .filter(move |_| !none)
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
}

fn json_line(text: &str) -> Result<(Option<String>, String), String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Line {
        id: Option<serde_json::Value>,
        text: String,
    }
    let l: Line = serde_json::from_str(text).map_err(|e| {
        format!("{e}; each line must be an object like {{\"id\": \"a\", \"text\": \"...\"}}")
    })?;
    let id = match l.id {
        None => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        Some(other) => return Err(format!("\"id\" must be a string or a number, not {other}")),
    };
    Ok((id, l.text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    #[test]
    fn plain_lines_keep_empty_lines_and_drop_the_final_newline() {
        let (_d, p) = file("t.txt", b"one\r\n\nthree\n");
        let t = read_texts(&p).unwrap();
        assert_eq!(t.texts, ["one", "", "three"]);
        assert_eq!(t.ids, ["1", "2", "3"]);
        let (_d, p) = file("t.txt", b"no newline");
        assert_eq!(read_texts(&p).unwrap().texts, ["no newline"]);
    }

    #[test]
    fn json_lines_take_ids_and_skip_blank_lines() {
        let (_d, p) = file(
            "t.jsonl",
            b"{\"id\": \"a\", \"text\": \"x\"}\n\n{\"id\": 7, \"text\": \"\xc3\xa9\"}\n{\"text\": \"z\"}\n",
        );
        let t = read_texts(&p).unwrap();
        assert_eq!(t.texts, ["x", "é", "z"]);
        assert_eq!(t.ids, ["a", "7", "4"]);
    }

    #[test]
    fn bad_files_name_the_line() {
        let (_d, p) = file("t.txt", b"");
        assert!(matches!(read_texts(&p), Err(TextError::NoTexts { .. })));
        let (_d, p) = file("t.txt", b"ok\nbad \xff byte\n");
        let e = read_texts(&p).unwrap_err();
        assert!(
            matches!(
                e,
                TextError::NotUtf8 {
                    line: 2,
                    column: 5,
                    ..
                }
            ),
            "{e}"
        );
        let (_d, p) = file("t.jsonl", b"{\"text\": \"a\"}\n{\"txt\": \"b\"}\n");
        let e = read_texts(&p).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("txt"), "{e}");
        let (_d, p) = file("t.jsonl", b"{\"id\": [1], \"text\": \"a\"}\n");
        let e = read_texts(&p).unwrap_err().to_string();
        assert!(e.contains("\"id\" must be"), "{e}");
    }
}
