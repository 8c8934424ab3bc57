//! API errors and the metav1 `Status` objects that carry them on the wire.

use serde_json::{json, Value};

/// An error as the API server reports it: an HTTP code, a machine-readable reason and a message.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

pub type ApiResult<T> = Result<T, ApiError>;

/// `details` for an error about one object: `{"name": ..., "group": ..., "kind": <plural resource>}`.
fn object_details(group: &str, resource: &str, name: &str) -> Value {
    let mut d = json!({ "name": name, "kind": resource });
    if !group.is_empty() {
        d["group"] = json!(group);
    }
    d
}

/// `pods "x"` or `leases.coordination.k8s.io "x"`, as the real server names objects in messages.
pub fn qualified(group: &str, resource: &str, name: &str) -> String {
    if group.is_empty() {
        format!("{resource} \"{name}\"")
    } else {
        format!("{resource}.{group} \"{name}\"")
    }
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError { code, reason, message: message.into(), details: None }
    }

    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        ApiError {
            details: Some(object_details(group, resource, name)),
            ..Self::new(404, "NotFound", format!("{} not found", qualified(group, resource, name)))
        }
    }

    /// The answer for a path that names no resource this server has.
    pub fn no_such_resource() -> Self {
        ApiError {
            details: Some(json!({})),
            ..Self::new(404, "NotFound", "the server could not find the requested resource")
        }
    }

    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        ApiError {
            details: Some(object_details(group, resource, name)),
            ..Self::new(409, "AlreadyExists", format!("{} already exists", qualified(group, resource, name)))
        }
    }

    pub fn conflict(group: &str, resource: &str, name: &str, why: &str) -> Self {
        ApiError {
            details: Some(object_details(group, resource, name)),
            ..Self::new(
                409,
                "Conflict",
                format!("Operation cannot be fulfilled on {}: {why}", qualified(group, resource, name)),
            )
        }
    }

    pub fn stale(group: &str, resource: &str, name: &str) -> Self {
        Self::conflict(
            group,
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 with one cause, like field validation failures.
    pub fn invalid(group: &str, kind: &str, name: &str, field: &str, detail: &str) -> Self {
        let mut details = json!({
            "name": name,
            "kind": kind,
            "causes": [{ "reason": "FieldValueInvalid", "message": detail, "field": field }]
        });
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        let what = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
        ApiError {
            details: Some(details),
            ..Self::new(422, "Invalid", format!("{what} \"{name}\" is invalid: {field}: {detail}"))
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml; got {content_type:?}"))
    }

    /// The metav1 `Status` object for this error.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

/// A `Status` with `status: Success`, returned by deletes of types that do not return the object.
pub fn success(group: &str, resource: &str, name: &str, uid: &str) -> Value {
    let mut details = object_details(group, resource, name);
    details["uid"] = json!(uid);
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}
