//! Tool schemas from schemars, cut to the subset OpenAI's strict mode
//! accepts: every object closed (`additionalProperties: false`) with all its
//! properties required (an optional one becomes nullable), `$ref`s inlined,
//! `oneOf` as `anyOf`, and keywords strict mode rejects removed.

use serde_json::{Map, Value};

const DROP: &[&str] = &["$schema", "title", "format", "default", "examples", "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems", "$defs", "definitions"];

/// The strict-mode parameters schema of `T`.
pub fn strict<T: schemars::JsonSchema>() -> Value {
    let schema = serde_json::to_value(schemars::schema_for!(T)).unwrap_or(Value::Null);
    let defs = schema.get("$defs").cloned().unwrap_or(Value::Object(Map::new()));
    cut(&schema, &defs, 0)
}

fn cut(v: &Value, defs: &Value, depth: usize) -> Value {
    let Value::Object(m) = v else {
        return v.clone();
    };
    if depth > 16 {
        return Value::Object(Map::new());
    }
    if let Some(target) = m.get("$ref").and_then(Value::as_str) {
        let name = target.rsplit('/').next().unwrap_or("");
        let mut resolved = defs.get(name).cloned().unwrap_or(Value::Object(Map::new()));
        // Keep a description written on the reference itself.
        if let (Some(d), Value::Object(r)) = (m.get("description"), &mut resolved) {
            r.insert("description".into(), d.clone());
        }
        return cut(&resolved, defs, depth + 1);
    }
    let mut out = Map::new();
    for (k, val) in m {
        if DROP.contains(&k.as_str()) {
            continue;
        }
        let key = if k == "oneOf" { "anyOf".to_string() } else { k.clone() };
        let new = match val {
            Value::Object(props) if k == "properties" => Value::Object(props.iter().map(|(p, s)| (p.clone(), cut(s, defs, depth + 1))).collect()),
            Value::Array(items) => Value::Array(items.iter().map(|i| cut(i, defs, depth + 1)).collect()),
            Value::Object(_) => cut(val, defs, depth + 1),
            other => other.clone(),
        };
        out.insert(key, new);
    }
    if out.get("type").and_then(Value::as_str) == Some("object") || out.contains_key("properties") {
        let required: Vec<String> = m.get("required").and_then(Value::as_array).map(|r| r.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default();
        let props = out.get_mut("properties").and_then(Value::as_object_mut);
        let mut all = Vec::new();
        if let Some(props) = props {
            for (name, schema) in props.iter_mut() {
                all.push(Value::String(name.clone()));
                if !required.contains(name) {
                    make_nullable(schema);
                }
            }
        }
        out.insert("required".into(), Value::Array(all));
        out.insert("additionalProperties".into(), Value::Bool(false));
        out.entry("properties").or_insert_with(|| Value::Object(Map::new()));
    }
    Value::Object(out)
}

fn make_nullable(schema: &mut Value) {
    let Value::Object(m) = schema else { return };
    match m.get_mut("type") {
        Some(Value::String(t)) if t != "null" => {
            let t = t.clone();
            m.insert("type".into(), Value::Array(vec![Value::String(t), Value::String("null".into())]));
        }
        Some(Value::Array(ts)) if !ts.iter().any(|t| t == "null") => ts.push(Value::String("null".into())),
        Some(_) => {}
        None => {
            let inner = Value::Object(std::mem::take(m));
            m.insert("anyOf".into(), Value::Array(vec![inner, serde_json::json!({ "type": "null" })]));
        }
    }
}
