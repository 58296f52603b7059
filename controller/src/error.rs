//! The controller's errors: what went wrong with which object, and what to do.

use kube::runtime::finalizer;

/// Why a reconcile (or building the objects of a manifest) failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the Kubernetes API failed (the object is retried with backoff).
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// No API to talk to.
    #[error("no Kubernetes API configured (in-cluster service account or kubeconfig): {0}")]
    Connect(#[source] kube::Error),
    /// The finalizer helper failed: adding or removing Argon's finalizer, or the apply or cleanup it ran.
    #[error("{0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
    /// The object has no namespace; the Argo Events kinds are namespaced.
    #[error("{kind} '{name}' has no namespace; EventSources, Sensors and EventBuses are namespaced objects")]
    NoNamespace { kind: &'static str, name: String },
    /// The object has no name.
    #[error("a {kind} has no metadata.name")]
    NoName { kind: &'static str },
    /// An EventBus kind Argon cannot connect to.
    #[error("EventBus '{name}': {reason}")]
    UnsupportedBus { name: String, reason: String },
    /// An EventBus cannot be removed while event sources or sensors use it.
    #[error("EventBus '{name}' is still used by {users}; delete or move them to another EventBus first")]
    BusInUse { name: String, users: String },
    /// A manifest could not be written into its ConfigMap.
    #[error("cannot serialize {what}: {message}")]
    Serialize { what: String, message: String },
}

/// The result type of the controller.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<finalizer::Error<Error>> for Error {
    fn from(e: finalizer::Error<Error>) -> Self {
        Error::Finalizer(Box::new(e))
    }
}
