//! `greeter catalog`: a second backend, `go.micro.srv.catalog`, endpoint `Catalog.Find`, whose
//! messages nest and repeat (`Query.Filter`, `Result.Item`, repeated tags and items). It serves
//! gRPC server reflection (`grpc.reflection.v1` and `v1alpha`) with its descriptors, so a caller
//! that knows nothing of it (`micro call`, as grpcurl does) can find its messages.
//!
//! Reflection is a streaming tonic service, which moves the whole server from grpc-lite's lean
//! unary path (h2 directly) to hyper's HTTP/2 connection: the greeter srv, the benchmarked path,
//! does not serve it.

use micro::registry::Endpoint;
use micro::server::Routes;

/// The generated messages and service code of `proto/catalog.proto` (micro-build).
pub mod pb {
    #![allow(clippy::all, missing_docs, unreachable_pub)]
    micro::include_proto!("go.micro.srv.catalog");
}

pub use pb::{query, result, CatalogClient, CatalogHandler, Query, Result as FindResult};

/// The service's name.
pub const SERVICE: &str = "go.micro.srv.catalog";

/// The encoded `FileDescriptorSet` of `proto/catalog.proto`, served by reflection.
pub const DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));

/// The fixed stock every instance holds: `(name, tags, stock)`.
const STOCK: [(&str, &[&str], i64); 5] = [
    ("red apple", &["fruit", "red"], 12),
    ("green apple", &["fruit", "green"], 7),
    ("strawberry", &["fruit", "red"], 30),
    ("red pepper", &["vegetable", "red"], 4),
    ("spinach", &["vegetable", "green"], 9),
];

/// The handler of one catalog instance.
#[derive(Debug, Clone)]
pub struct Catalog {
    instance: String,
}

impl Catalog {
    pub fn new(instance: impl Into<String>) -> Self {
        Catalog {
            instance: instance.into(),
        }
    }

    /// `Catalog.Find`: items whose name contains `text` and that carry every filter tag, in
    /// stock order, at most `limit` of them (0: all); a negative limit is a bad request.
    pub fn find(&self, query: Query) -> Result<FindResult, micro::Error> {
        let filter = query.filter.unwrap_or_default();
        let limit = usize::try_from(filter.limit).map_err(|_| {
            micro::Error::bad_request(SERVICE, format!("limit {} is negative", filter.limit))
        })?;
        let items = STOCK
            .iter()
            .filter(|(name, tags, _)| {
                name.contains(query.text.as_str())
                    && filter.tags.iter().all(|t| tags.contains(&t.as_str()))
            })
            .take(if limit == 0 { usize::MAX } else { limit })
            .map(|(name, tags, stock)| result::Item {
                name: (*name).to_owned(),
                tags: tags.iter().map(|t| (*t).to_owned()).collect(),
                stock: *stock,
            })
            .collect();
        Ok(FindResult {
            items,
            instance: self.instance.clone(),
        })
    }

    /// Mounts `Catalog.Find` on `service`, with the reflection services.
    pub fn register(self, service: micro::Service) -> Result<micro::Service, crate::Error> {
        let service = service.routes(reflection()?, []);
        Ok(pb::register_catalog_handler(service, self))
    }
}

impl CatalogHandler for Catalog {
    async fn find(&self, query: Query) -> Result<FindResult, micro::Error> {
        Catalog::find(self, query)
    }
}

/// The reflection services (v1 and v1alpha) with the catalog's descriptors.
fn reflection() -> Result<Routes, crate::Error> {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(DESCRIPTORS)
    };
    let v1 = builder().build_v1().map_err(crate::Error::Reflection)?;
    let v1alpha = builder()
        .build_v1alpha()
        .map_err(crate::Error::Reflection)?;
    Ok(Routes::new().tonic(v1).tonic(v1alpha))
}

/// The registered endpoint, with go-micro's field trees (depth ≤ 3).
pub fn endpoints() -> Vec<Endpoint> {
    pb::catalog_endpoints()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(text: &str, tags: &[&str], limit: i32) -> Query {
        Query {
            text: text.to_owned(),
            filter: Some(query::Filter {
                tags: tags.iter().map(|t| (*t).to_owned()).collect(),
                limit,
            }),
        }
    }

    #[test]
    fn finds_by_text_tags_and_limit() {
        let catalog = Catalog::new("one");
        let names =
            |r: FindResult| -> Vec<String> { r.items.into_iter().map(|i| i.name).collect() };
        let all = catalog.find(Query::default()).expect("all");
        assert_eq!(all.items.len(), 5);
        assert_eq!(all.instance, "one");
        assert_eq!(
            names(catalog.find(query("", &["red"], 0)).expect("red")),
            ["red apple", "strawberry", "red pepper"]
        );
        assert_eq!(
            names(
                catalog
                    .find(query("apple", &["fruit"], 1))
                    .expect("one apple")
            ),
            ["red apple"]
        );
        let err = catalog.find(query("", &[], -1)).expect_err("negative");
        assert_eq!(err.code, 400);
    }

    #[test]
    fn descriptors_describe_the_service() {
        use prost::Message as _;
        // A FileDescriptorSet's `file` (1) has the tag and wire type of the reflection answer's
        // `file_descriptor_proto`, so the set decodes as one, each file still encoded.
        let set = tonic_reflection::pb::v1::FileDescriptorResponse::decode(DESCRIPTORS)
            .expect("a descriptor set");
        assert_eq!(set.file_descriptor_proto.len(), 1);
        let file = String::from_utf8_lossy(&set.file_descriptor_proto[0]);
        assert!(file.contains("go.micro.srv.catalog"), "{file}");
        assert!(file.contains("Catalog"), "{file}");
    }
}
