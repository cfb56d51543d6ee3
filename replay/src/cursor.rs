//! Scan cursors (DynamoDB `LastEvaluatedKey`s) as text, so that a replay's progress item can keep them.
//!
//! The text is DynamoDB's own JSON shape, `{"pk":{"S":"User#u1"},"sk":{"N":"3"}}`: exact for
//! the string and number attributes keys are made of (a number stays the text DynamoDB gave).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Map, Value};

/// A table key, as `ExclusiveStartKey` / `LastEvaluatedKey`.
pub type Key = HashMap<String, AttributeValue>;

/// The key as text; `Err` for an attribute type a key cannot have here (binary).
pub fn encode(key: &Key) -> Result<String, String> {
    let mut fields = Map::new();
    for (name, value) in key {
        let typed = match value {
            AttributeValue::S(text) => ("S", text),
            AttributeValue::N(number) => ("N", number),
            other => {
                return Err(format!(
                    "key attribute {name} has an unsupported type: {other:?}"
                ))
            }
        };
        fields.insert(
            name.clone(),
            Value::Object(Map::from_iter([(
                typed.0.to_owned(),
                Value::String(typed.1.clone()),
            )])),
        );
    }
    Ok(Value::Object(fields).to_string())
}

/// The key `text` encodes; `Err` says what is wrong with it.
pub fn decode(text: &str) -> Result<Key, String> {
    let bad = |why: &str| format!("invalid cursor {text:?}: {why}");
    let value: Value = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
    let Value::Object(fields) = value else {
        return Err(bad("not an object"));
    };
    if fields.is_empty() {
        return Err(bad("no attribute"));
    }
    let mut key = Key::new();
    for (name, typed) in fields {
        let Value::Object(typed) = typed else {
            return Err(bad("an attribute is not {\"S\"|\"N\": text}"));
        };
        let mut entries = typed.into_iter();
        let value = match (entries.next(), entries.next()) {
            (Some((kind, Value::String(text))), None) => match kind.as_str() {
                "S" => AttributeValue::S(text),
                "N" if text.parse::<f64>().is_ok() => AttributeValue::N(text),
                _ => return Err(bad("an attribute is not {\"S\"|\"N\": text}")),
            },
            _ => return Err(bad("an attribute is not {\"S\"|\"N\": text}")),
        };
        key.insert(name, value);
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_events_table_key_round_trips_exactly() {
        let key = Key::from([
            (
                "pk".to_owned(),
                AttributeValue::S("User#a \"quoted\" id".into()),
            ),
            ("sk".to_owned(), AttributeValue::N("12".into())),
        ]);
        let text = encode(&key).expect("encodes");
        assert_eq!(
            text,
            r#"{"pk":{"S":"User#a \"quoted\" id"},"sk":{"N":"12"}}"#
        );
        assert_eq!(decode(&text), Ok(key));
    }

    #[test]
    fn garbage_is_refused_with_the_reason() {
        for bad in [
            "",
            "[]",
            "{}",
            r#"{"pk":"x"}"#,
            r#"{"pk":{"B":"eA=="}}"#,
            r#"{"pk":{"S":"x","N":"1"}}"#,
            r#"{"sk":{"N":"twelve"}}"#,
            r#"{"sk":{"N":12}}"#,
        ] {
            let error = decode(bad).expect_err(bad);
            assert!(error.contains("invalid cursor"), "{error}");
        }
        let binary = Key::from([("pk".to_owned(), AttributeValue::Bool(true))]);
        assert!(encode(&binary).is_err());
    }
}
