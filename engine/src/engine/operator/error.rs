//! Why the operator could not run a template call, or part of one. The
//! message becomes the message of the node that failed, so each says what
//! was wrong in the manifest or the step, in the words the node has always
//! shown.

use argon_crds::secret::SecretError;

use crate::expr::ExprError;

/// What went wrong while resolving, preparing or running a template call.
#[derive(Debug, thiserror::Error)]
pub(super) enum OperatorError {
    /// A placeholder or expression could not be evaluated.
    #[error(transparent)]
    Expr(#[from] ExprError),
    /// A field that takes a number (or a placeholder giving one) holds something else.
    #[error("'{0}' is not a number")]
    NotANumber(String),
    /// A duration that is neither seconds nor a duration such as `2m`.
    #[error("{0}")]
    Duration(String),
    /// A field's value is not valid; the source says why.
    #[error("{field}: {source}")]
    Field {
        field: &'static str,
        #[source]
        source: Box<OperatorError>,
    },
    /// A step could not be prepared (its containers, volumes, environment).
    #[error("{0}")]
    Step(String),
    /// The workflow was stopped (or terminated, or ran past its deadline).
    #[error("{0}")]
    Stopped(String),
    /// The task that ran a step panicked.
    #[error(transparent)]
    Panicked(#[from] tokio::task::JoinError),

    /// The WorkflowTemplate a `templateRef` names cannot be read.
    #[error("templateRef {name}/{template}: {source}")]
    TemplateRef {
        name: String,
        template: String,
        #[source]
        source: crate::Error,
    },
    /// The WorkflowTemplate a `templateRef` names has no such template.
    #[error("template '{template}' not found in WorkflowTemplate '{name}'")]
    TemplateNotInRef { name: String, template: String },
    /// The spec has no template by that name.
    #[error("template '{0}' not found")]
    TemplateNotFound(String),
    /// A template could not be turned into JSON to apply `templateDefaults`.
    #[error("{0}")]
    Serialize(#[source] serde_json::Error),
    /// A template with its `templateDefaults` applied is not a valid template.
    #[error("templateDefaults: {0}")]
    TemplateDefaults(#[source] serde_json::Error),

    /// An input parameter without a value: the call gives none and the template has no default.
    #[error("inputs.parameters.{0} was not supplied")]
    ParameterMissing(String),
    /// An input parameter's value is not one of its `enum`.
    #[error("inputs.parameters.{name}: value '{value}' is not one of [{allowed}]")]
    ParameterNotAllowed {
        name: String,
        value: String,
        allowed: String,
    },
    /// A required input artifact that the call does not supply.
    #[error("inputs.artifacts.{0} was not supplied")]
    ArtifactMissing(String),
    /// An input artifact with no `path` to place it at.
    #[error("inputs.artifacts.{0} has no path")]
    ArtifactNoPath(String),
    /// An input artifact could not be placed.
    #[error("input artifact '{name}': {source}")]
    InputArtifact {
        name: String,
        #[source]
        source: Box<OperatorError>,
    },
    /// An input artifact's `from` does not name an output artifact.
    #[error("'{0}' does not name an output artifact of an earlier step")]
    NotAnOutputArtifact(String),
    /// An input artifact location local mode cannot fetch from.
    #[error("the input artifact has no location: give it from, s3, raw, http or git")]
    UnsupportedLocation,
    /// The artifact repository, a fetch or the sandbox failed.
    #[error("{0}")]
    Artifact(String),

    /// `withParam` does not give JSON.
    #[error("withParam '{param}' gives '{text}', not a JSON list: {source}")]
    WithParamNotJson {
        param: String,
        text: String,
        #[source]
        source: serde_json::Error,
    },
    /// `withParam` gives JSON that is not a list.
    #[error("withParam '{param}' gives '{text}', not a JSON list")]
    WithParamNotList { param: String, text: String },
    /// `withSequence` with neither `count` nor `end`.
    #[error("withSequence needs count or end")]
    SequenceUnbounded,

    /// A secret (of an HTTP template's header) cannot be read.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// An HTTP template's method is not a valid method.
    #[error("method: {0}")]
    InvalidMethod(String),

    /// An output parameter's file cannot be read and the parameter has no default.
    #[error("output parameter '{name}': cannot read {path}: {source}")]
    OutputUnreadable {
        name: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// An output parameter's expression cannot be evaluated.
    #[error("output parameter '{name}': {source}")]
    OutputExpression {
        name: String,
        #[source]
        source: ExprError,
    },
    /// An output parameter of a steps or DAG template refers to a value no step gave.
    #[error("output parameter '{name}': '{reference}' has no value")]
    OutputNoValue { name: String, reference: String },
    /// A required output artifact the step did not write.
    #[error("output artifact '{name}': {path} does not exist")]
    OutputArtifactMissing { name: String, path: String },
    /// An output artifact could not be saved.
    #[error("output artifact '{name}': {source}")]
    OutputArtifact {
        name: String,
        #[source]
        source: Box<OperatorError>,
    },
}

impl OperatorError {
    /// The error as the value of `field`.
    pub(super) fn field(field: &'static str, source: OperatorError) -> OperatorError {
        OperatorError::Field {
            field,
            source: Box::new(source),
        }
    }
}

/// Results of the operator.
pub(super) type Result<T, E = OperatorError> = std::result::Result<T, E>;
