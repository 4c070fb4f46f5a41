//! go-micro's endpoint trees from the descriptors, as its extractor (`server/extractor.go`)
//! writes them from the generated Go structs, and as micro's greeter registered them by hand:
//!
//! - a message is `{name, type: <message>, values: its fields}`; the top one is named after
//!   its type; fields are named as in the `.proto` (the Go struct's json tag);
//! - scalars have Go's type names (`string`, `int32`, `uint64`, `float64`, `bool`, `[]uint8`);
//!   repeated fields `[]<type>`; maps `map[<key>]<value>` (a message value as `*<Message>`);
//!   a message or enum field has the message's own name (`Filter`, `[]Item`);
//! - three levels at most (go-micro stops at depth 3): a field of a field has no values.

use std::collections::HashMap;
use std::fmt::Write as _;

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorSet};

/// go-micro's depth limit: values at this depth are left out.
const MAX_DEPTH: usize = 3;

/// Every message of the compiled files by fully qualified name (`.pkg.Outer.Inner`).
#[derive(Debug, Default)]
pub(crate) struct Index {
    messages: HashMap<String, DescriptorProto>,
}

impl Index {
    pub(crate) fn new(fds: &FileDescriptorSet) -> Self {
        let mut index = Index::default();
        for file in &fds.file {
            let package = match file.package() {
                "" => String::new(),
                p => format!(".{p}"),
            };
            for message in &file.message_type {
                index.add(&package, message);
            }
        }
        index
    }

    fn add(&mut self, scope: &str, message: &DescriptorProto) {
        let name = format!("{scope}.{}", message.name());
        for nested in &message.nested_type {
            self.add(&name, nested);
        }
        self.messages.insert(name, message.clone());
    }

    /// The Rust expression of the tree of message `fq` (`.pkg.Request`).
    pub(crate) fn tree(&self, fq: &str) -> String {
        let name = simple(fq);
        self.value(name, name, Some(fq), 0)
    }

    /// `micro::handler::value(name, kind, vec![..])`, with the fields of `message` (if any,
    /// and not too deep).
    fn value(&self, name: &str, kind: &str, message: Option<&str>, depth: usize) -> String {
        let mut values = String::new();
        if let Some(descriptor) = message.and_then(|m| self.messages.get(m)) {
            if depth + 1 < MAX_DEPTH {
                for field in &descriptor.field {
                    let _ = write!(values, "{}, ", self.field(field, depth + 1));
                }
            }
        }
        format!("::micro::handler::value({name:?}, {kind:?}, vec![{values}])")
    }

    fn field(&self, field: &FieldDescriptorProto, depth: usize) -> String {
        let repeated = field.label() == Label::Repeated;
        if repeated && field.r#type() == Type::Message {
            if let Some(entry) = self.map_entry(field.type_name()) {
                let kind = format!(
                    "map[{}]{}",
                    self.go_type(&entry.0, true),
                    self.go_type(&entry.1, true)
                );
                return self.value(field.name(), &kind, None, depth);
            }
        }
        let base = self.go_type(field, false);
        let kind = if repeated { format!("[]{base}") } else { base };
        let message = (field.r#type() == Type::Message).then(|| field.type_name());
        self.value(field.name(), &kind, message, depth)
    }

    /// The key and value fields of a map's entry message, if `fq` is one.
    fn map_entry(&self, fq: &str) -> Option<(FieldDescriptorProto, FieldDescriptorProto)> {
        let entry = self.messages.get(fq)?;
        if !entry.options.as_ref().is_some_and(|o| o.map_entry()) {
            return None;
        }
        let key = entry.field.iter().find(|f| f.number() == 1)?.clone();
        let value = entry.field.iter().find(|f| f.number() == 2)?.clone();
        Some((key, value))
    }

    /// Go's name of a field's type (`pointer`: a message as `*Name`, as in a map's value).
    fn go_type(&self, field: &FieldDescriptorProto, pointer: bool) -> String {
        let name = match field.r#type() {
            Type::Double => "float64",
            Type::Float => "float32",
            Type::Int64 | Type::Sint64 | Type::Sfixed64 => "int64",
            Type::Uint64 | Type::Fixed64 => "uint64",
            Type::Int32 | Type::Sint32 | Type::Sfixed32 => "int32",
            Type::Uint32 | Type::Fixed32 => "uint32",
            Type::Bool => "bool",
            Type::String => "string",
            Type::Bytes => "[]uint8",
            Type::Enum => simple(field.type_name()),
            Type::Message | Type::Group if pointer => {
                return format!("*{}", simple(field.type_name()))
            }
            Type::Message | Type::Group => simple(field.type_name()),
        };
        name.to_owned()
    }
}

/// `Item` of `.pkg.Result.Item`.
fn simple(fq: &str) -> &str {
    fq.rsplit('.').next().unwrap_or(fq)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(proto: &str) -> Index {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("t.proto"), proto).expect("write proto");
        let fds = protox::compile(["t.proto"], [dir.path()]).expect("compile");
        Index::new(&fds)
    }

    #[test]
    fn scalars_nested_repeated_maps_and_depth() {
        let index = index(
            r#"syntax = "proto3"; package p;
            message Pair { string key = 1; }
            message Q {
              message F { repeated string tags = 1; int32 limit = 2; Deep deep = 3; }
              message Deep { string x = 1; }
              string text = 1; F filter = 2; repeated F items = 3; map<string, Pair> header = 4;
              bytes raw = 5; uint64 n = 6; double d = 7;
            }"#,
        );
        let code = index.tree(".p.Q");
        let v = |n: &str, k: &str, inner: &str| {
            format!("::micro::handler::value({n:?}, {k:?}, vec![{inner}])")
        };
        let f_fields = format!(
            "{}, {}, {}, ",
            v("tags", "[]string", ""),
            v("limit", "int32", ""),
            v("deep", "Deep", "")
        );
        let expected = v(
            "Q",
            "Q",
            &format!(
                "{}, {}, {}, {}, {}, {}, {}, ",
                v("text", "string", ""),
                v("filter", "F", &f_fields),
                v("items", "[]F", &f_fields),
                v("header", "map[string]*Pair", ""),
                v("raw", "[]uint8", ""),
                v("n", "uint64", ""),
                v("d", "float64", ""),
            ),
        );
        assert_eq!(code, expected);
    }
}
