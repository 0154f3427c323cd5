//! Package keywords as search reads them: the `keywords` of a manifest (a list of
//! strings, or one comma-separated string as some old packages have), lower-cased,
//! trimmed, without commas, each between commas (`,cli,http client,`) so one keyword
//! is found with `LIKE '%,<keyword>,%'`. The SQL migration that fills the column for
//! packages published earlier writes the same form.

use serde_json::Value;

/// Most keywords kept per package, and the longest one; a manifest may say more.
const MAX_KEYWORDS: usize = 64;
const MAX_KEYWORD_CHARS: usize = 100;

/// The keywords of a manifest, normalised (see the module text).
pub fn of_manifest(manifest: &Value) -> Vec<String> {
    let raw: Vec<&str> = match manifest.get("keywords") {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(text)) => text.split(',').collect(),
        _ => Vec::new(),
    };
    let mut out: Vec<String> = Vec::new();
    for word in raw {
        let word: String = word
            .replace(',', " ")
            .trim()
            .to_lowercase()
            .chars()
            .take(MAX_KEYWORD_CHARS)
            .collect();
        if !word.is_empty() && !out.contains(&word) {
            out.push(word);
        }
        if out.len() == MAX_KEYWORDS {
            break;
        }
    }
    out
}

/// The stored form of a manifest's keywords, or `None` when it has none.
pub fn index_text(manifest: &Value) -> Option<String> {
    let words = of_manifest(manifest);
    (!words.is_empty()).then(|| format!(",{},", words.join(",")))
}

/// `index_text` of a stored manifest's text (unreadable text has no keywords).
pub fn index_text_of_stored(manifest: &str) -> Option<String> {
    serde_json::from_str::<Value>(manifest)
        .ok()
        .and_then(|m| index_text(&m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_and_strings_are_normalised() {
        assert_eq!(
            index_text(&json!({"keywords": ["HTTP", " Client ", "a,b", "http", 5, ""]})),
            Some(",http,client,a b,".into())
        );
        assert_eq!(
            index_text(&json!({"keywords": "cli, Parser"})),
            Some(",cli,parser,".into())
        );
        assert_eq!(index_text(&json!({"keywords": []})), None);
        assert_eq!(index_text(&json!({"keywords": {"a": 1}})), None);
        assert_eq!(index_text(&json!({})), None);
        assert_eq!(index_text_of_stored("not json"), None);
    }

    #[test]
    fn long_lists_are_bounded() {
        let many: Vec<String> = (0..500).map(|i| format!("k{i}")).collect();
        assert_eq!(
            of_manifest(&json!({ "keywords": many })).len(),
            MAX_KEYWORDS
        );
        let long = "x".repeat(1000);
        assert_eq!(
            of_manifest(&json!({ "keywords": [long] }))[0].len(),
            MAX_KEYWORD_CHARS
        );
    }
}
