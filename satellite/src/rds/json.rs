//! A streaming JSON writer for RDAP responses: members go straight into the response buffer in
//! the order they are written; strings are escaped by serde_json.
//!
//! Hand-written because it is on the measured hot path: rendering an RDAP domain response by
//! building a `serde_json::Value` tree first (a `BTreeMap` per object, a `String` per key and
//! value) and then serialising it took about 70 µs and hundreds of allocations per request on
//! the benchmark machine; writing in place takes a few µs and allocates nothing
//! (`cargo bench -p orrery-satellite --bench rds`, "chain and rendering alone";
//! `tests/no_alloc.rs`). The writer only places separators: the rendering code decides the
//! structure, and the tests parse every response back with serde_json.

use std::fmt::Display;

use serde::Serializer as _;

/// Writes JSON values into a byte buffer. Commas are placed automatically: a value or a key
/// that follows a value in the same container gets one.
pub(crate) struct Json<'a> {
    out: &'a mut Vec<u8>,
    /// A value was just written: the next value or key needs a comma first.
    comma: bool,
}

impl<'a> Json<'a> {
    /// A writer appending to `out`.
    pub(crate) fn new(out: &'a mut Vec<u8>) -> Self {
        Self { out, comma: false }
    }

    fn separate(&mut self) {
        if self.comma {
            self.out.push(b',');
        }
    }

    fn raw(&mut self, text: &[u8]) {
        self.separate();
        self.out.extend_from_slice(text);
        self.comma = true;
    }

    /// An object whose members `members` writes (with [`Json::key`] before each value).
    pub(crate) fn object(&mut self, members: impl FnOnce(&mut Self)) {
        self.container(b'{', members, b'}');
    }

    /// An array whose elements `elements` writes.
    pub(crate) fn array(&mut self, elements: impl FnOnce(&mut Self)) {
        self.container(b'[', elements, b']');
    }

    fn container(&mut self, open: u8, inside: impl FnOnce(&mut Self), close: u8) {
        self.separate();
        self.out.push(open);
        self.comma = false;
        inside(self);
        self.out.push(close);
        self.comma = true;
    }

    /// A member's key; the value written next is the member's.
    pub(crate) fn key(&mut self, key: &str) -> &mut Self {
        self.str(key);
        self.out.push(b':');
        self.comma = false;
        self
    }

    /// A string value.
    pub(crate) fn str(&mut self, value: &str) {
        self.separate();
        // Most strings (keys, notices, names) need no escape: one scan, one copy. The others
        // go through serde_json, which escapes exactly these octets.
        if value.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
            // Writing to a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *self.out, value);
        } else {
            self.out.reserve(value.len() + 2);
            self.out.push(b'"');
            self.out.extend_from_slice(value.as_bytes());
            self.out.push(b'"');
        }
        self.comma = true;
    }

    /// A string value written through its `Display` (no intermediate `String`). The `Display`
    /// must fail only when its writer does (serde_json's `collect_str` panics on an error of
    /// its own making): every one used here only passes on the writer's result.
    pub(crate) fn display(&mut self, value: impl Display) {
        self.separate();
        let _ = serde_json::Serializer::new(&mut *self.out).collect_str(&value);
        self.comma = true;
    }

    /// A number.
    pub(crate) fn number(&mut self, value: u64) {
        self.separate();
        let _ = serde_json::to_writer(&mut *self.out, &value);
        self.comma = true;
    }

    /// `true` or `false`.
    pub(crate) fn bool(&mut self, value: bool) {
        self.raw(if value { b"true" } else { b"false" });
    }

    /// `{}`.
    pub(crate) fn empty_object(&mut self) {
        self.raw(b"{}");
    }

    /// An array of strings.
    pub(crate) fn strs(&mut self, values: &[&str]) {
        self.array(|j| {
            for v in values {
                j.str(v);
            }
        });
    }

    /// `"key": "value"`.
    pub(crate) fn field(&mut self, key: &str, value: &str) {
        self.key(key).str(value);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn written(f: impl FnOnce(&mut Json<'_>)) -> Value {
        let mut out = Vec::new();
        f(&mut Json::new(&mut out));
        serde_json::from_slice(&out)
            .unwrap_or_else(|e| panic!("invalid JSON {e}: {}", String::from_utf8_lossy(&out)))
    }

    #[test]
    fn separators_and_nesting() {
        let v = written(|j| {
            j.object(|j| {
                j.field("a", "x");
                j.key("b").array(|j| {
                    j.number(1);
                    j.empty_object();
                    j.array(|_| {});
                    j.bool(false);
                    j.object(|j| j.key("c").bool(true));
                });
                j.key("d").strs(&["p", "q"]);
                j.key("e").object(|_| {});
            })
        });
        assert_eq!(
            v,
            json!({"a": "x", "b": [1, {}, [], false, {"c": true}], "d": ["p", "q"], "e": {}})
        );
    }

    #[test]
    fn strings_are_escaped() {
        let nasty = "quote \" backslash \\ newline \n nul \u{0} bell \u{7} é \u{2028}";
        let v = written(|j| {
            j.array(|j| {
                j.str(nasty);
                j.display(format_args!("{nasty}"));
            })
        });
        assert_eq!(v, json!([nasty, nasty]));
    }
}
