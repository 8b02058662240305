//! gRPC status codes and the error a ttrpc `Response` carries.
//!
//! ttrpc reuses gRPC's error model: a reply's `status` is a `google.rpc.Status` whose `code` is a
//! gRPC code. [`RpcError`] is that error as a Rust value; handlers return it, and the reply is
//! built from it in one place ([`error_response`]). On the client side [`response_result`]
//! turns a reply back into the payload or the error.
//!
//! ```
//! use nodeguard::nri::transport::status::{Code, RpcError, error_response, response_result};
//!
//! let reply = error_response(&RpcError::new(Code::UNIMPLEMENTED, "method Foo"));
//! let err = response_result(reply).unwrap_err();
//! assert_eq!(err.code, Code::UNIMPLEMENTED);
//! assert_eq!(err.to_string(), "rpc error: code = Unimplemented desc = method Foo");
//! ```

use std::fmt;

use bytes::Bytes;
use nodeguard_proto::google::rpc::Status;
use nodeguard_proto::ttrpc::Response;

/// A gRPC status code. Values outside the known range are kept as they are (displayed as
/// `Code(n)`), so a peer's code is never lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Code(pub i32);

impl Code {
    /// 0: success.
    pub const OK: Self = Self(0);
    /// 1: the caller cancelled the operation.
    pub const CANCELLED: Self = Self(1);
    /// 2: an error without a better code; what Go's ttrpc sends for a plain error.
    pub const UNKNOWN: Self = Self(2);
    /// 3: the request is malformed.
    pub const INVALID_ARGUMENT: Self = Self(3);
    /// 4: the deadline passed before the operation completed.
    pub const DEADLINE_EXCEEDED: Self = Self(4);
    /// 5: something requested was not found.
    pub const NOT_FOUND: Self = Self(5);
    /// 6: what should be created exists already.
    pub const ALREADY_EXISTS: Self = Self(6);
    /// 7: the caller may not do this.
    pub const PERMISSION_DENIED: Self = Self(7);
    /// 8: a resource, e.g. the message size limit, is exhausted.
    pub const RESOURCE_EXHAUSTED: Self = Self(8);
    /// 9: the system is not in a state that allows the operation.
    pub const FAILED_PRECONDITION: Self = Self(9);
    /// 10: the operation was aborted.
    pub const ABORTED: Self = Self(10);
    /// 11: a value is out of range.
    pub const OUT_OF_RANGE: Self = Self(11);
    /// 12: unknown service or method. NRI v0.12+ runtimes fall back to `StateChange` on it.
    pub const UNIMPLEMENTED: Self = Self(12);
    /// 13: an internal error.
    pub const INTERNAL: Self = Self(13);
    /// 14: the service is (temporarily) unavailable.
    pub const UNAVAILABLE: Self = Self(14);
    /// 15: data was lost or corrupted.
    pub const DATA_LOSS: Self = Self(15);
    /// 16: the caller is not authenticated.
    pub const UNAUTHENTICATED: Self = Self(16);

    /// The code's name as Go's `codes.Code` prints it (`"InvalidArgument"`), if it is known.
    pub fn name(self) -> Option<&'static str> {
        const NAMES: [&str; 17] = [
            "OK",
            "Canceled",
            "Unknown",
            "InvalidArgument",
            "DeadlineExceeded",
            "NotFound",
            "AlreadyExists",
            "PermissionDenied",
            "ResourceExhausted",
            "FailedPrecondition",
            "Aborted",
            "OutOfRange",
            "Unimplemented",
            "Internal",
            "Unavailable",
            "DataLoss",
            "Unauthenticated",
        ];
        usize::try_from(self.0)
            .ok()
            .and_then(|i| NAMES.get(i))
            .copied()
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "Code({})", self.0),
        }
    }
}

/// A failed RPC: a non-OK code and a message for the peer's logs.
///
/// Displays like Go's `status.Error`, which is how containerd logs and wraps it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rpc error: code = {code} desc = {message}")]
pub struct RpcError {
    /// The status code; never [`Code::OK`] when built through this module.
    pub code: Code,
    /// Human-readable description.
    pub message: String,
}

impl RpcError {
    /// An error with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// [`Code::UNIMPLEMENTED`] for a service or method we do not serve. Runtimes look only at
    /// the code (NRI v0.12+ then falls back to `StateChange`); the message is for logs.
    pub fn unimplemented(service: &str, method: &str) -> Self {
        Self::new(
            Code::UNIMPLEMENTED,
            format!("{service}/{method} is not implemented"),
        )
    }

    /// The error a `google.rpc.Status` describes, `None` if its code is OK.
    pub fn from_status(status: &Status) -> Option<Self> {
        (status.code != Code::OK.0).then(|| Self::new(Code(status.code), status.message.clone()))
    }

    /// The error as a `google.rpc.Status` (without details).
    pub fn to_status(&self) -> Status {
        Status {
            code: self.code.0,
            message: self.message.clone(),
            details: Vec::new(),
        }
    }
}

impl From<RpcError> for Status {
    fn from(err: RpcError) -> Self {
        Self {
            code: err.code.0,
            message: err.message,
            details: Vec::new(),
        }
    }
}

/// A successful reply carrying `payload` (an encoded response message).
///
/// Like Go's ttrpc server, the status is present with code 0 rather than absent; clients treat
/// both the same.
pub fn ok_response(payload: impl Into<Bytes>) -> Response {
    Response {
        status: Some(Status::default()),
        payload: payload.into(),
    }
}

/// A failed reply: `err` as the status, no payload.
pub fn error_response(err: &RpcError) -> Response {
    Response {
        status: Some(err.to_status()),
        payload: Bytes::new(),
    }
}

/// A reply's payload if its status is absent or OK, otherwise the error it reports.
pub fn response_result(response: Response) -> Result<Bytes, RpcError> {
    match response.status.as_ref().and_then(RpcError::from_status) {
        Some(err) => Err(err),
        None => Ok(response.payload),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use prost::Message as _;

    #[test]
    fn code_values_match_grpc() {
        let expected = [
            (Code::OK, 0, "OK"),
            (Code::UNKNOWN, 2, "Unknown"),
            (Code::INVALID_ARGUMENT, 3, "InvalidArgument"),
            (Code::DEADLINE_EXCEEDED, 4, "DeadlineExceeded"),
            (Code::NOT_FOUND, 5, "NotFound"),
            (Code::RESOURCE_EXHAUSTED, 8, "ResourceExhausted"),
            (Code::FAILED_PRECONDITION, 9, "FailedPrecondition"),
            (Code::UNIMPLEMENTED, 12, "Unimplemented"),
            (Code::INTERNAL, 13, "Internal"),
            (Code::UNAVAILABLE, 14, "Unavailable"),
            (Code::UNAUTHENTICATED, 16, "Unauthenticated"),
        ];
        for (code, value, name) in expected {
            assert_eq!(code.0, value);
            assert_eq!(code.to_string(), name);
        }
        assert_eq!(Code(17).to_string(), "Code(17)");
        assert_eq!(Code(-1).name(), None);
        assert_eq!(Code::default(), Code::OK);
    }

    #[test]
    fn codes_work_in_patterns() {
        let retryable = |code| matches!(code, Code::UNAVAILABLE | Code::DEADLINE_EXCEEDED);
        assert!(retryable(Code(14)));
        assert!(!retryable(Code::INTERNAL));
    }

    #[test]
    fn error_response_bytes() {
        let reply = error_response(&RpcError::new(Code::INVALID_ARGUMENT, "bad"));
        // Response.status (1) { code (1) = 3, message (2) = "bad" }, no payload.
        assert_eq!(
            reply.encode_to_vec(),
            b"\x0a\x07\x08\x03\x12\x03bad".to_vec()
        );
    }

    #[test]
    fn ok_response_bytes() {
        let reply = ok_response(vec![0x10, 0x08]);
        // An empty status (code 0) then payload (2).
        assert_eq!(
            reply.encode_to_vec(),
            vec![0x0a, 0x00, 0x12, 0x02, 0x10, 0x08]
        );
        assert_eq!(
            response_result(reply).unwrap(),
            Bytes::from(vec![0x10, 0x08])
        );
    }

    #[test]
    fn absent_status_means_ok() {
        let reply = Response {
            status: None,
            payload: Bytes::from_static(b"p"),
        };
        assert_eq!(response_result(reply).unwrap(), Bytes::from_static(b"p"));
    }

    #[test]
    fn unimplemented_wording() {
        let err = RpcError::unimplemented("nri.pkg.api.v1alpha1.Plugin", "RunPodSandbox");
        assert_eq!(err.code, Code::UNIMPLEMENTED);
        assert_eq!(
            err.to_string(),
            "rpc error: code = Unimplemented desc = \
             nri.pkg.api.v1alpha1.Plugin/RunPodSandbox is not implemented"
        );
        let status: Status = err.clone().into();
        assert_eq!(RpcError::from_status(&status), Some(err));
        assert_eq!(RpcError::from_status(&Status::default()), None);
    }

    proptest! {
        #[test]
        fn error_round_trips_through_the_wire(code in 1i32..64, message in ".*") {
            let err = RpcError::new(Code(code), message);
            let wire = error_response(&err).encode_to_vec();
            let decoded = Response::decode(wire.as_slice()).unwrap();
            prop_assert_eq!(response_result(decoded), Err(err));
        }
    }
}
