//! Label and field selectors, parsed from query strings and matched against stored objects.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum LabelOp {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
    Gt(i64),
    Lt(i64),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector {
    reqs: Vec<(String, LabelOp)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Not,
    Eq,
    NotEq,
    Gt,
    Lt,
    Open,
    Close,
    Comma,
}

fn lex(s: &str) -> Vec<Tok> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            ' ' | '\t' => i += 1,
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            '(' => {
                out.push(Tok::Open);
                i += 1
            }
            ')' => {
                out.push(Tok::Close);
                i += 1
            }
            '>' => {
                out.push(Tok::Gt);
                i += 1
            }
            '<' => {
                out.push(Tok::Lt);
                i += 1
            }
            '!' if next == Some('=') => {
                out.push(Tok::NotEq);
                i += 2
            }
            '!' => {
                out.push(Tok::Not);
                i += 1
            }
            '=' if next == Some('=') => {
                out.push(Tok::Eq);
                i += 2
            }
            '=' => {
                out.push(Tok::Eq);
                i += 1
            }
            _ => {
                let start = i;
                while i < chars.len() && !" \t,()=!<>".contains(chars[i]) {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
            }
        }
    }
    out
}

fn valid_name_part(s: &str, max: usize) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
}

fn valid_label_key(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => {
            !prefix.is_empty()
                && prefix.len() <= 253
                && prefix.split('.').all(|p| valid_name_part(p, 63) && !p.contains('_'))
                && valid_name_part(name, 63)
        }
        None => valid_name_part(key, 63),
    }
}

fn valid_label_value(v: &str) -> bool {
    v.is_empty() || valid_name_part(v, 63)
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, String> {
        let toks = lex(s);
        let mut reqs = Vec::new();
        let mut i = 0;
        let err = |msg: String| Err(format!("unable to parse requirement: {msg}"));
        let ident = |t: Option<&Tok>| match t {
            Some(Tok::Ident(s)) => Some(s.clone()),
            _ => None,
        };
        while i < toks.len() {
            let (key, op);
            if toks[i] == Tok::Not {
                let Some(k) = ident(toks.get(i + 1)) else { return err("expected a key after '!'".into()) };
                key = k;
                op = LabelOp::NotExists;
                i += 2;
            } else {
                let Some(k) = ident(toks.get(i)) else { return err(format!("found {:?}, expected a key", toks[i])) };
                key = k;
                i += 1;
                match toks.get(i) {
                    None | Some(Tok::Comma) => op = LabelOp::Exists,
                    Some(t @ (Tok::Eq | Tok::NotEq)) => {
                        let v = ident(toks.get(i + 1));
                        // `key=` with nothing after is a valid requirement for the empty value.
                        let value = v.clone().unwrap_or_default();
                        op = if *t == Tok::Eq { LabelOp::Eq(value) } else { LabelOp::NotEq(value) };
                        i += if v.is_some() { 2 } else { 1 };
                    }
                    Some(t @ (Tok::Gt | Tok::Lt)) => {
                        let Some(n) = ident(toks.get(i + 1)).and_then(|v| v.parse::<i64>().ok()) else {
                            return err(format!("for '{key}' an integer value is required after '>' or '<'"));
                        };
                        op = if *t == Tok::Gt { LabelOp::Gt(n) } else { LabelOp::Lt(n) };
                        i += 2;
                    }
                    Some(Tok::Ident(w)) if w == "in" || w == "notin" => {
                        let is_in = w == "in";
                        i += 1;
                        if toks.get(i) != Some(&Tok::Open) {
                            return err(format!("expected '(' after '{w}'"));
                        }
                        i += 1;
                        let mut values = Vec::new();
                        loop {
                            match toks.get(i) {
                                Some(Tok::Ident(v)) => {
                                    values.push(v.clone());
                                    i += 1;
                                }
                                Some(Tok::Comma) => i += 1,
                                Some(Tok::Close) => {
                                    i += 1;
                                    break;
                                }
                                _ => return err(format!("unterminated value list for '{key}'")),
                            }
                        }
                        if values.is_empty() {
                            return err(format!("for '{w}', 'notin' operators, values set can't be empty"));
                        }
                        op = if is_in { LabelOp::In(values) } else { LabelOp::NotIn(values) };
                    }
                    Some(t) => return err(format!("found {t:?}, expected an operator after '{key}'")),
                }
            }
            if !valid_label_key(&key) {
                return err(format!("invalid label key {key:?}"));
            }
            let values: Vec<&String> = match &op {
                LabelOp::Eq(v) | LabelOp::NotEq(v) => vec![v],
                LabelOp::In(vs) | LabelOp::NotIn(vs) => vs.iter().collect(),
                _ => vec![],
            };
            if let Some(bad) = values.into_iter().find(|v| !valid_label_value(v)) {
                return err(format!("invalid label value {bad:?}"));
            }
            reqs.push((key, op));
            match toks.get(i) {
                None => break,
                Some(Tok::Comma) => i += 1,
                Some(t) => return err(format!("found {t:?}, expected: ',' or 'end of string'")),
            }
        }
        Ok(LabelSelector { reqs })
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// Match against an object's `metadata.labels`.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.reqs.iter().all(|(key, op)| {
            let have = get(key);
            match op {
                LabelOp::Eq(v) => have == Some(v.as_str()),
                LabelOp::NotEq(v) => have != Some(v.as_str()),
                LabelOp::In(vs) => have.is_some_and(|h| vs.iter().any(|v| v == h)),
                LabelOp::NotIn(vs) => !have.is_some_and(|h| vs.iter().any(|v| v == h)),
                LabelOp::Exists => have.is_some(),
                LabelOp::NotExists => have.is_none(),
                LabelOp::Gt(n) => have.and_then(|h| h.parse::<i64>().ok()).is_some_and(|h| h > *n),
                LabelOp::Lt(n) => have.and_then(|h| h.parse::<i64>().ok()).is_some_and(|h| h < *n),
            }
        })
    }
}

/// A parsed field selector: `field=value`, `field==value`, `field!=value`, comma separated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector {
    reqs: Vec<(String, bool, String)>,
}

/// Split on a separator that is not escaped with a backslash.
fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            out.last_mut().unwrap().push('\\');
            out.last_mut().unwrap().push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            out.push(String::new());
        } else {
            out.last_mut().unwrap().push(c);
        }
    }
    out
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                _ => return Err(format!("invalid field selector value escape in {s:?}")),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// Position of the first unescaped occurrence of `pat` in `s`.
fn find_unescaped(s: &str, pat: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        if s[i..].starts_with(pat) {
            return Some(i);
        }
        i += 1;
    }
    None
}

impl FieldSelector {
    /// Parse, accepting only `metadata.name`, `metadata.namespace` and the given extra field labels.
    pub fn parse(s: &str, allowed: &[&str]) -> Result<Self, String> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(FieldSelector { reqs });
        }
        for term in split_unescaped(s, ',') {
            let term = term.trim();
            let (field, eq, value) = if let Some(p) = find_unescaped(term, "!=") {
                (&term[..p], false, &term[p + 2..])
            } else if let Some(p) = find_unescaped(term, "==") {
                (&term[..p], true, &term[p + 2..])
            } else if let Some(p) = find_unescaped(term, "=") {
                (&term[..p], true, &term[p + 1..])
            } else {
                return Err(format!("invalid selector: '{s}'; can't understand '{term}'"));
            };
            let field = field.trim();
            if field != "metadata.name" && field != "metadata.namespace" && !allowed.contains(&field) {
                return Err(format!("field label not supported: {field}"));
            }
            reqs.push((field.to_string(), eq, unescape(value.trim())?));
        }
        Ok(FieldSelector { reqs })
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// The value a field selector compares for `field`, the way the real field-set functions render it.
    fn field_value(obj: &Value, field: &str) -> String {
        let path = match field {
            "source" => "source.component".to_string(),
            f => f.to_string(),
        };
        let mut cur = Some(obj);
        for part in path.split('.') {
            cur = cur.and_then(|v| v.get(part));
        }
        match cur {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(Value::Number(n)) => n.to_string(),
            _ if field == "spec.hostNetwork" || field == "spec.unschedulable" => "false".into(),
            _ => String::new(),
        }
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.reqs.iter().all(|(field, eq, want)| (Self::field_value(obj, field) == *want) == *eq)
    }

    /// The single name this selector pins with `metadata.name=...`, if any.
    pub fn pinned_name(&self) -> Option<&str> {
        self.reqs.iter().find(|(f, eq, _)| f == "metadata.name" && *eq).map(|(_, _, v)| v.as_str())
    }
}

/// Everything that decides whether an object belongs to a list or watch.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn matches(&self, obj: &Value) -> bool {
        if let Some(ns) = &self.namespace {
            if obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("") != ns {
                return false;
            }
        }
        self.labels.matches(obj) && self.fields.matches(obj)
    }

    pub fn has_selectors(&self) -> bool {
        !self.labels.is_empty() || !self.fields.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({ "metadata": { "name": "a", "namespace": "ns", "labels": labels }, "spec": { "nodeName": "n1" } })
    }

    #[test]
    fn label_selector_operators() {
        let o = obj(json!({ "app": "web", "tier": "front", "n": "5" }));
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&o);
        assert!(m(""));
        assert!(m("app=web"));
        assert!(m("app==web"));
        assert!(!m("app!=web"));
        assert!(m("missing!=x"));
        assert!(m("app in (web, db)"));
        assert!(!m("app notin (web,db)"));
        assert!(m("missing notin (web)"));
        assert!(m("tier"));
        assert!(!m("!tier"));
        assert!(m("!missing"));
        assert!(m("app=web,tier in (front),!missing"));
        assert!(m("n>4"));
        assert!(!m("n<5"));
        assert!(!m("app=web,tier=back"));
        assert!(LabelSelector::parse("app in web").is_err());
        assert!(LabelSelector::parse("a b").is_err());
        assert!(LabelSelector::parse("-bad=x").is_err());
        assert!(LabelSelector::parse("example.com/app=x").is_ok());
    }

    #[test]
    fn field_selector_basics() {
        let o = obj(json!({}));
        let p = |s: &str| FieldSelector::parse(s, &["spec.nodeName", "spec.hostNetwork"]);
        assert!(p("spec.nodeName=n1").unwrap().matches(&o));
        assert!(p("spec.nodeName==n1,metadata.namespace=ns").unwrap().matches(&o));
        assert!(!p("spec.nodeName!=n1").unwrap().matches(&o));
        assert!(p("spec.hostNetwork=false").unwrap().matches(&o));
        assert!(p("metadata.name!=b").unwrap().matches(&o));
        assert_eq!(p("spec.bogus=x").unwrap_err(), "field label not supported: spec.bogus");
        assert_eq!(p("metadata.name=a\\,b").unwrap().pinned_name(), Some("a,b"));
    }
}
