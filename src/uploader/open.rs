//! Where objects go, as plain data, and how a store is opened for it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::s3::{S3Options, S3Store};
use super::store::{LocalDirStore, Store};

/// A destination: a local directory or an S3 bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Local(PathBuf),
    S3 { bucket: String },
}

/// How to reach an S3 destination beyond the standard credential chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Settings {
    /// Region (default: AWS_REGION or the profile's).
    pub region: Option<String>,
    /// Endpoint of an S3-compatible store (AWS_ENDPOINT_URL works too).
    pub endpoint_url: Option<String>,
    /// Address the bucket in the URL path instead of the host name.
    pub path_style: bool,
}

/// Opens a destination: a local directory, or an S3 bucket through the
/// standard credential chain (checked, but the bucket is not contacted).
pub async fn open_store(
    destination: &Destination,
    s3: &S3Settings,
    acl: Option<String>,
    connect_timeout: Duration,
) -> Result<Arc<dyn Store>, String> {
    match destination {
        Destination::Local(dir) => match LocalDirStore::open(dir) {
            Ok(s) => Ok(Arc::new(s)),
            Err(e) => Err(format!("cannot open destination {}: {e}", dir.display())),
        },
        Destination::S3 { bucket } => {
            let store = connect_s3(bucket, s3, acl, connect_timeout).await?;
            Ok(Arc::new(store))
        }
    }
}

/// An S3 bucket through the standard credential chain and `s3`'s settings
/// (see [`S3Store::connect`]).
pub async fn connect_s3(
    bucket: &str,
    s3: &S3Settings,
    acl: Option<String>,
    connect_timeout: Duration,
) -> Result<S3Store, String> {
    let opts = S3Options {
        bucket: bucket.to_string(),
        region: s3.region.clone(),
        endpoint_url: s3.endpoint_url.clone(),
        path_style: s3.path_style,
        acl,
        connect_timeout,
    };
    S3Store::connect(&opts)
        .await
        .map_err(|e| format!("S3 destination {bucket}: {e}"))
}
