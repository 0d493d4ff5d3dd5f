//! S3 and S3-compatible stores (AWS, Backblaze B2, Cloudflare R2, MinIO,
//! Wasabi, Garage) through aws-sdk-s3.
//!
//! Credentials and region come from the SDK's standard chain (environment,
//! profile files, web identity, container and instance metadata), never
//! from the command line. Retries are the uploader's own (see
//! [`super::retry`]), so the SDK's are off.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    ProvideCredentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ObjectCannedAcl;
use aws_sdk_s3::Client;

use super::store::{Body, BoxFuture, Condition, ErrorKind, ObjectMeta, Store, StoreError, Tagged};

/// How to reach the bucket.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    pub bucket: String,
    /// Overrides the region from the environment or profile.
    pub region: Option<String>,
    /// For S3-compatible stores; `AWS_ENDPOINT_URL` works too.
    pub endpoint_url: Option<String>,
    /// Address the bucket in the path (`https://host/bucket/key`).
    pub path_style: bool,
    /// A canned ACL for every object, e.g. `public-read`.
    pub acl: Option<String>,
    /// Connect timeout per attempt.
    pub connect_timeout: Duration,
}

#[derive(Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    acl: Option<ObjectCannedAcl>,
    description: String,
}

impl S3Store {
    /// Loads the SDK configuration and checks that credentials and a region
    /// are there. Does not contact the bucket.
    pub async fn connect(opts: &S3Options) -> Result<S3Store, String> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = &opts.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(url) = &opts.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let shared = loader.load().await;
        let Some(region) = shared.region().cloned() else {
            return Err(
                "no region: pass --region or set AWS_REGION (S3-compatible stores \
                        have their own names, e.g. garage, auto for R2, us-east-1 for MinIO)"
                    .into(),
            );
        };
        let Some(provider) = shared.credentials_provider() else {
            return Err("no credentials provider is configured".into());
        };
        if let Err(e) = provider.provide_credentials().await {
            return Err(format!(
                "no credentials found (looked in the environment, profile files, web identity, \
                 container and instance metadata): {}",
                redact(&e.to_string())
            ));
        }
        let config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(opts.path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(opts.connect_timeout)
                    .build(),
            )
            .build();
        let endpoint = opts
            .endpoint_url
            .clone()
            .or_else(|| shared.endpoint_url().map(str::to_string));
        let description = match &endpoint {
            Some(url) => format!("s3://{} at {} (region {region})", opts.bucket, url),
            None => format!("s3://{} (region {region})", opts.bucket),
        };
        Ok(S3Store {
            client: Client::from_conf(config),
            bucket: opts.bucket.clone(),
            acl: opts.acl.as_deref().map(ObjectCannedAcl::from),
            description,
        })
    }

    /// A PUT, with `If-None-Match` or `If-Match` for a condition; returns
    /// the object's new entity tag.
    fn put_object(
        &self,
        key: String,
        body: Body,
        meta: ObjectMeta,
        condition: Option<Condition>,
    ) -> BoxFuture<Result<Option<String>, StoreError>> {
        let me = self.clone();
        Box::pin(async move {
            // a segment is read whole (a few MB, at most --concurrency at
            // once): signing hashes the body before sending it, and a file
            // stream would be read twice. It is read on tokio's blocking
            // pool, so that a slow disk holds up only this request
            let stream = match &body {
                Body::File(path) => ByteStream::from(tokio::fs::read(path).await.map_err(|e| {
                    StoreError::permanent(format!("reading {}: {e}", path.display()))
                })?),
                Body::Bytes(b) => ByteStream::from(b.to_vec()),
            };
            let (if_none_match, if_match) = match condition {
                None => (None, None),
                Some(Condition::Absent) => (Some("*".to_string()), None),
                Some(Condition::Matches(tag)) => (None, Some(tag)),
            };
            me.client
                .put_object()
                .bucket(&me.bucket)
                .key(&key)
                .body(stream)
                .content_type(meta.content_type)
                .cache_control(meta.cache_control)
                .set_acl(me.acl.clone())
                .set_if_none_match(if_none_match)
                .set_if_match(if_match)
                .send()
                .await
                .map(|out| out.e_tag().map(str::to_string))
                .map_err(|e| classify(e, &format!("PUT {key}")))
        })
    }

    /// A DELETE, with `If-Match` where a tag is given.
    fn delete_object(
        &self,
        key: String,
        etag: Option<String>,
    ) -> BoxFuture<Result<(), StoreError>> {
        let me = self.clone();
        Box::pin(async move {
            me.client
                .delete_object()
                .bucket(&me.bucket)
                .key(&key)
                .set_if_match(etag)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify(e, &format!("DELETE {key}")))
        })
    }

    /// The SDK client, for readers that need more than [`Store`] offers
    /// (`live_upload serve`'s ranges and conditions).
    pub fn client(&self) -> &Client {
        &self.client
    }
}

impl Store for S3Store {
    fn describe(&self) -> String {
        self.description.clone()
    }

    fn put(&self, key: String, body: Body, meta: ObjectMeta) -> BoxFuture<Result<(), StoreError>> {
        let put = self.put_object(key, body, meta, None);
        Box::pin(async move { put.await.map(|_| ()) })
    }

    fn put_if(
        &self,
        key: String,
        body: Body,
        meta: ObjectMeta,
        condition: Condition,
    ) -> BoxFuture<Result<Option<String>, StoreError>> {
        self.put_object(key, body, meta, Some(condition))
    }

    fn get_tagged(&self, key: String) -> BoxFuture<Result<Option<Tagged>, StoreError>> {
        let me = self.clone();
        Box::pin(async move {
            let result = me
                .client
                .get_object()
                .bucket(&me.bucket)
                .key(&key)
                .send()
                .await;
            let out = match result {
                Ok(out) => out,
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                    return Ok(None)
                }
                Err(e) => return Err(classify(e, &format!("GET {key}"))),
            };
            let etag = out.e_tag().map(str::to_string);
            let bytes = out.body.collect().await.map_err(|e| {
                StoreError::new(
                    ErrorKind::Transient,
                    format!("GET {key}: body cut off: {e}"),
                )
            })?;
            Ok(Some(Tagged {
                bytes: bytes.into_bytes().to_vec(),
                etag,
            }))
        })
    }

    fn delete_if(&self, key: String, etag: String) -> BoxFuture<Result<(), StoreError>> {
        self.delete_object(key, Some(etag))
    }

    fn get(&self, key: String) -> BoxFuture<Result<Option<Vec<u8>>, StoreError>> {
        let get = self.get_tagged(key);
        Box::pin(async move { Ok(get.await?.map(|t| t.bytes)) })
    }

    fn exists(&self, key: String) -> BoxFuture<Result<bool, StoreError>> {
        let me = self.clone();
        Box::pin(async move {
            match me
                .client
                .head_object()
                .bucket(&me.bucket)
                .key(&key)
                .send()
                .await
            {
                Ok(_) => Ok(true),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
                Err(e) => Err(classify(e, &format!("HEAD {key}"))),
            }
        })
    }

    fn delete(&self, key: String) -> BoxFuture<Result<(), StoreError>> {
        self.delete_object(key, None)
    }
}

/// Sorts an SDK error into transient, unreachable or permanent, with a
/// message that names the request and carries no secret.
fn classify<E>(err: SdkError<E, HttpResponse>, what: &str) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (kind, detail) = match &err {
        SdkError::ConstructionFailure(_) => (ErrorKind::Permanent, root_cause(&err)),
        SdkError::TimeoutError(_) => (ErrorKind::Unreachable, "timed out".to_string()),
        SdkError::DispatchFailure(d) => {
            let kind = if d.is_user() {
                ErrorKind::Permanent
            } else {
                ErrorKind::Unreachable
            };
            (kind, root_cause(&err))
        }
        SdkError::ResponseError(_) => (
            ErrorKind::Transient,
            format!("bad response: {}", root_cause(&err)),
        ),
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            let code = err.code().unwrap_or("").to_string();
            let message = err.message().unwrap_or("").to_string();
            let kind = service_error_kind(status, &code);
            let hint = hint(&code);
            (kind, format!("HTTP {status} {code}: {message}{hint}"))
        }
        _ => (ErrorKind::Transient, root_cause(&err)),
    };
    StoreError::new(kind, redact(&format!("{what}: {detail}")))
}

/// The innermost error's message ("Connection refused (os error 111)"),
/// with the one above it when that adds context ("tcp connect error").
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut chain = vec![err.to_string()];
    let mut cur = err.source();
    while let Some(e) = cur {
        chain.push(e.to_string());
        cur = e.source();
    }
    let last = chain.pop().unwrap_or_default();
    match chain.pop() {
        Some(above) if !above.contains(&last) && above.len() < 60 => format!("{above}: {last}"),
        _ => last,
    }
}

/// Which S3 error answers are worth retrying.
pub fn service_error_kind(status: u16, code: &str) -> ErrorKind {
    match (status, code) {
        (
            _,
            "SlowDown" | "RequestTimeout" | "InternalError" | "ServiceUnavailable"
            | "OperationAborted",
        ) => ErrorKind::Transient,
        (429 | 500..=599, _) | (409, _) | (408, _) => ErrorKind::Transient,
        // a conditional write whose condition failed: another writer
        (412, _) => ErrorKind::Conflict,
        _ => ErrorKind::Permanent,
    }
}

fn hint(code: &str) -> &'static str {
    match code {
        "NoSuchBucket" => " (the bucket does not exist)",
        "InvalidAccessKeyId" | "SignatureDoesNotMatch" => " (check the credentials)",
        "AccessDenied" => {
            " (check the credentials and their permissions; see the README for the policy)"
        }
        "RequestTimeTooSkewed" => " (the system clock is wrong)",
        _ => "",
    }
}

/// Removes secret values that a message might echo.
pub fn redact(message: &str) -> String {
    let mut out = message.to_string();
    for var in ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] {
        if let Ok(secret) = std::env::var(var) {
            if secret.len() >= 8 {
                out = out.replace(&secret, "***");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_server_errors_are_transient() {
        assert_eq!(service_error_kind(503, "SlowDown"), ErrorKind::Transient);
        assert_eq!(
            service_error_kind(500, "InternalError"),
            ErrorKind::Transient
        );
        assert_eq!(
            service_error_kind(400, "RequestTimeout"),
            ErrorKind::Transient
        );
        assert_eq!(service_error_kind(429, ""), ErrorKind::Transient);
        assert_eq!(
            service_error_kind(403, "AccessDenied"),
            ErrorKind::Permanent
        );
        assert_eq!(
            service_error_kind(403, "SignatureDoesNotMatch"),
            ErrorKind::Permanent
        );
        assert_eq!(
            service_error_kind(404, "NoSuchBucket"),
            ErrorKind::Permanent
        );
        assert_eq!(
            service_error_kind(400, "InvalidArgument"),
            ErrorKind::Permanent
        );
    }

    #[test]
    fn a_segment_is_read_without_holding_the_runtime_thread() {
        use aws_sdk_s3::config::Credentials;
        use std::future::poll_fn;
        // no server: the request fails once the body is read, which is all
        // this test needs
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("test"))
            .endpoint_url("http://127.0.0.1:9")
            .force_path_style(true)
            .credentials_provider(Credentials::new(
                "AKIDTEST",
                "not-a-secret",
                None,
                None,
                "test",
            ))
            .retry_config(RetryConfig::disabled())
            .build();
        let store = S3Store {
            client: Client::from_conf(config),
            bucket: "live".into(),
            acl: None,
            description: "test".into(),
        };
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("s-00001.ts");
        let (go, writer) = super::super::store::testing::fifo(&source, b"segment 1");
        let meta = ObjectMeta {
            content_type: "video/mp2t".into(),
            cache_control: "max-age=1".into(),
        };
        let mut put = store.put("live/s-00001.ts".into(), Body::File(source), meta);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let signalled = rt.block_on(async move {
            // the first poll starts reading the segment
            let _ = poll_fn(|cx| std::task::Poll::Ready(put.as_mut().poll(cx))).await;
            // another task on this current-thread runtime gets to run
            tokio::spawn(async move { go.send(()).is_ok() })
                .await
                .unwrap();
            tokio::task::spawn_blocking(move || writer.join().unwrap())
                .await
                .unwrap()
        });
        assert!(
            signalled,
            "the segment was written only after the other task ran"
        );
    }
}
