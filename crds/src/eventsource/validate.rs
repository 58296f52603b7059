//! Semantic checks of one EventSource: what loads fine but cannot work
//! (a port that is not a port, a schedule that is not cron, two events with
//! one name), reported with the path of the field at fault.

use std::collections::BTreeMap;

use super::{
    CalendarEventSource, DeclaredEvent, EventConfig, EventSource, EventSourceKind, GithubEventSource, WebhookContext,
};
use crate::diag::{FieldPath, Finding};
use crate::time::parse_duration;

/// The HTTP methods a webhook endpoint can accept.
const HTTP_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
];

/// Checks one EventSource and returns what is wrong with it: errors for what
/// cannot work, warnings for events of kinds Argon does not run yet.
pub fn validate(es: &EventSource) -> Vec<Finding> {
    let spec_path = FieldPath::root().key("spec");
    let events = es.spec.events();
    let mut findings = Vec::new();
    if events.is_empty() {
        findings.push(Finding::error(
            spec_path,
            "no event defined: add at least one event under a kind such as spec.webhook or \
             spec.calendar",
        ));
        return findings;
    }

    let mut first_use: BTreeMap<&str, FieldPath> = BTreeMap::new();
    for event in &events {
        let path = spec_path.key(event.kind.as_str()).key(event.name);
        match first_use.get(event.name) {
            Some(first) => findings.push(Finding::error(
                path.clone(),
                format!(
                    "event name '{}' is also defined at {first}; event names must be unique \
                     within an EventSource because sensors refer to events by name",
                    event.name
                ),
            )),
            None => {
                first_use.insert(event.name, path.clone());
            }
        }
        check_event(event, &path, &mut findings);
    }
    findings
}

fn check_event(event: &DeclaredEvent<'_>, path: &FieldPath, findings: &mut Vec<Finding>) {
    match event.config {
        EventConfig::Webhook(c) => check_webhook_context(&c.context, path, findings),
        EventConfig::Github(c) => {
            check_webhook_context(&c.webhook, &path.key("webhook"), findings);
            check_github(c, path, findings);
        }
        EventConfig::Gitlab(c) => check_webhook_context(&c.webhook, &path.key("webhook"), findings),
        EventConfig::Bitbucket(c) => check_webhook_context(&c.webhook, &path.key("webhook"), findings),
        EventConfig::BitbucketServer(c) => check_webhook_context(&c.webhook, &path.key("webhook"), findings),
        EventConfig::Calendar(c) => check_calendar(c, path, findings),
        EventConfig::Unsupported(_) => {
            if let EventSourceKind::Unsupported(key) = &event.kind {
                findings.push(Finding::warning(
                    path.clone(),
                    format!(
                        "event source kind '{key}' is not supported by Argon yet; the manifest \
                         loads but this event will not run"
                    ),
                ));
            }
        }
        EventConfig::File(_)
        | EventConfig::Nats(_)
        | EventConfig::Mqtt(_)
        | EventConfig::Redis(_)
        | EventConfig::RedisStream(_)
        | EventConfig::Amqp(_)
        | EventConfig::Sqs(_)
        | EventConfig::Generic(_) => {}
        EventConfig::Kafka(_) => findings.push(Finding::warning(
            path.clone(),
            "event source kind 'kafka' is not run by Argon yet (no Kafka-compatible broker to test \
             against); the manifest loads but `argon run` refuses this event",
        )),
    }
}

fn check_webhook_context(ctx: &WebhookContext, path: &FieldPath, findings: &mut Vec<Finding>) {
    match ctx.port.parse::<u16>() {
        Ok(port) if port > 0 => {}
        _ => findings.push(Finding::error(
            path.key("port"),
            format!("port '{}' is not a number between 1 and 65535", ctx.port),
        )),
    }
    if !ctx.endpoint.starts_with('/') {
        findings.push(Finding::error(
            path.key("endpoint"),
            format!("endpoint '{}' must start with '/', e.g. '/example'", ctx.endpoint),
        ));
    }
    if !HTTP_METHODS.contains(&ctx.method.as_str()) {
        let upper = ctx.method.to_ascii_uppercase();
        let hint = if HTTP_METHODS.contains(&upper.as_str()) {
            format!("; methods are upper case: '{upper}'")
        } else {
            format!("; use one of {}", HTTP_METHODS.join(", "))
        };
        findings.push(Finding::error(
            path.key("method"),
            format!("method '{}' is not an HTTP method{hint}", ctx.method),
        ));
    }
}

fn check_github(github: &GithubEventSource, path: &FieldPath, findings: &mut Vec<Finding>) {
    let has_repositories = !github.owned_repositories().is_empty();
    let has_organizations = !github.organizations.is_empty();
    if !has_repositories && !has_organizations {
        findings.push(Finding::error(
            path.clone(),
            "github event defines neither 'repositories' nor 'organizations'; add \
             'repositories: [{owner: ..., names: [...]}]' or 'organizations: [...]'",
        ));
    }
    if has_repositories && has_organizations {
        findings.push(Finding::error(
            path.key("organizations"),
            "github event defines both 'repositories' and 'organizations'; keep only one",
        ));
    }
    let creates_hooks = (github.api_token.is_some() || github.github_app.is_some())
        && github.webhook.url.as_deref().is_some_and(|u| !u.is_empty());
    if creates_hooks && github.events.is_empty() {
        findings.push(Finding::error(
            path.key("events"),
            "github event creates a hook (it has credentials and webhook.url) but lists no \
             'events'; add e.g. 'events: [\"push\"]' or '[\"*\"]'",
        ));
    }
    if let Some(ct) = github.content_type.as_deref()
        && !ct.is_empty()
        && ct != "json"
        && ct != "form"
    {
        findings.push(Finding::error(
            path.key("contentType"),
            format!("contentType '{ct}' is not 'json' or 'form'"),
        ));
    }
    let base = github.github_base_url.as_deref().unwrap_or_default();
    let upload = github.github_upload_url.as_deref().unwrap_or_default();
    if base.is_empty() != upload.is_empty() {
        let (missing, present) = if base.is_empty() {
            ("githubBaseURL", "githubUploadURL")
        } else {
            ("githubUploadURL", "githubBaseURL")
        };
        findings.push(Finding::error(
            path.key(missing),
            format!(
                "{missing} is required when {present} is set (GitHub Enterprise needs both, so \
                 that requests never reach public GitHub by accident)"
            ),
        ));
    }
}

fn check_calendar(cal: &CalendarEventSource, path: &FieldPath, findings: &mut Vec<Finding>) {
    let schedule = cal.schedule.as_deref().filter(|s| !s.trim().is_empty());
    let interval = cal.interval.as_deref().filter(|s| !s.trim().is_empty());
    if schedule.is_none() && interval.is_none() {
        findings.push(Finding::error(
            path.clone(),
            "calendar event needs a 'schedule' (cron, e.g. '*/5 * * * *' or '@hourly') or an \
             'interval' (e.g. '10s')",
        ));
    }
    if let Some(schedule) = schedule
        && let Err(why) = crate::time::check_schedule(schedule)
    {
        findings.push(Finding::error(path.key("schedule"), why));
    }
    if let Some(interval) = interval {
        match parse_duration(interval) {
            Ok(d) if d.is_zero() => findings.push(Finding::error(
                path.key("interval"),
                format!("interval '{interval}' must be longer than zero"),
            )),
            Ok(_) => {}
            Err(why) => findings.push(Finding::error(path.key("interval"), format!("interval {why}"))),
        }
    }
    let max_duration = cal
        .persistence
        .as_ref()
        .and_then(|p| p.catchup.as_ref())
        .and_then(|c| c.max_duration.as_deref())
        .filter(|s| !s.is_empty());
    if let Some(max) = max_duration
        && let Err(why) = parse_duration(max)
    {
        findings.push(Finding::error(
            path.key("persistence").key("catchup").key("maxDuration"),
            format!("maxDuration {why}"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Severity;

    fn load(yaml: &str) -> EventSource {
        serde_norway::from_str(yaml).expect("test manifest loads")
    }

    fn findings(spec: &str) -> Vec<(String, String)> {
        let yaml = format!("apiVersion: argoproj.io/v1alpha1\nkind: EventSource\nmetadata:\n  name: t\nspec:\n{spec}");
        validate(&load(&yaml))
            .into_iter()
            .map(|f| (f.path, f.message))
            .collect()
    }

    fn webhook(port: &str, endpoint: &str, method: &str) -> String {
        format!(
            "  webhook:\n    example:\n      port: \"{port}\"\n      endpoint: \"{endpoint}\"\n      method: {method}\n"
        )
    }

    #[test]
    fn a_valid_webhook_has_no_finding() {
        assert_eq!(findings(&webhook("12000", "/example", "POST")), vec![]);
    }

    #[test]
    fn no_event_at_all() {
        assert_eq!(
            findings("  eventBusName: default\n"),
            vec![(
                "spec".to_string(),
                "no event defined: add at least one event under a kind such as spec.webhook or \
                 spec.calendar"
                    .to_string()
            )]
        );
    }

    #[test]
    fn webhook_port_must_be_a_port_number() {
        for bad in ["http", "0", "65536", "", "-1"] {
            assert_eq!(
                findings(&webhook(bad, "/example", "POST")),
                vec![(
                    "spec.webhook.example.port".to_string(),
                    format!("port '{bad}' is not a number between 1 and 65535")
                )],
                "port {bad:?}"
            );
        }
    }

    #[test]
    fn webhook_endpoint_must_start_with_a_slash() {
        assert_eq!(
            findings(&webhook("12000", "example", "POST")),
            vec![(
                "spec.webhook.example.endpoint".to_string(),
                "endpoint 'example' must start with '/', e.g. '/example'".to_string()
            )]
        );
    }

    #[test]
    fn webhook_method_must_be_an_http_method() {
        assert_eq!(
            findings(&webhook("12000", "/example", "FETCH")),
            vec![(
                "spec.webhook.example.method".to_string(),
                "method 'FETCH' is not an HTTP method; use one of GET, HEAD, POST, PUT, PATCH, \
                 DELETE, OPTIONS, CONNECT, TRACE"
                    .to_string()
            )]
        );
        assert_eq!(
            findings(&webhook("12000", "/example", "post")),
            vec![(
                "spec.webhook.example.method".to_string(),
                "method 'post' is not an HTTP method; methods are upper case: 'POST'".to_string()
            )]
        );
    }

    #[test]
    fn webhook_context_of_a_git_provider_is_checked_under_webhook() {
        let spec = "  github:\n    gh:\n      repositories:\n        - owner: argoproj\n          names: [argo-events]\n      webhook:\n        endpoint: /push\n        port: \"99999\"\n        method: POST\n";
        assert_eq!(
            findings(spec),
            vec![(
                "spec.github.gh.webhook.port".to_string(),
                "port '99999' is not a number between 1 and 65535".to_string()
            )]
        );
    }

    #[test]
    fn github_needs_repositories_or_organizations() {
        let spec = "  github:\n    gh:\n      webhook:\n        endpoint: /push\n        port: \"12000\"\n        method: POST\n";
        assert_eq!(
            findings(spec),
            vec![(
                "spec.github.gh".to_string(),
                "github event defines neither 'repositories' nor 'organizations'; add \
                 'repositories: [{owner: ..., names: [...]}]' or 'organizations: [...]'"
                    .to_string()
            )]
        );
        // The deprecated owner/repository pair and organizations both count.
        let deprecated = format!("{spec}      owner: argoproj\n      repository: argo\n");
        assert_eq!(findings(&deprecated), vec![]);
        let orgs = format!("{spec}      organizations: [argoproj]\n");
        assert_eq!(findings(&orgs), vec![]);
    }

    #[test]
    fn github_settings_that_cannot_work() {
        let base = "  github:\n    gh:\n      repositories:\n        - owner: argoproj\n          names: [argo-events]\n      webhook:\n        endpoint: /push\n        port: \"12000\"\n        method: POST\n";
        assert_eq!(
            findings(&format!("{base}      organizations: [argoproj]\n")),
            vec![(
                "spec.github.gh.organizations".to_string(),
                "github event defines both 'repositories' and 'organizations'; keep only one".to_string()
            )]
        );
        assert_eq!(
            findings(&format!("{base}      contentType: xml\n")),
            vec![(
                "spec.github.gh.contentType".to_string(),
                "contentType 'xml' is not 'json' or 'form'".to_string()
            )]
        );
        assert_eq!(
            findings(&format!("{base}      githubBaseURL: https://ghe.example.com/api/v3/\n")),
            vec![(
                "spec.github.gh.githubUploadURL".to_string(),
                "githubUploadURL is required when githubBaseURL is set (GitHub Enterprise needs \
                 both, so that requests never reach public GitHub by accident)"
                    .to_string()
            )]
        );
        let hook = base.replace(
            "        method: POST\n",
            "        method: POST\n        url: https://hooks.example.com\n      apiToken: {name: gh, key: token}\n",
        );
        assert_eq!(
            findings(&hook),
            vec![(
                "spec.github.gh.events".to_string(),
                "github event creates a hook (it has credentials and webhook.url) but lists no \
                 'events'; add e.g. 'events: [\"push\"]' or '[\"*\"]'"
                    .to_string()
            )]
        );
        assert_eq!(findings(&format!("{hook}      events: [push]\n")), vec![]);
    }

    #[test]
    fn calendar_needs_a_schedule_or_an_interval() {
        assert_eq!(
            findings("  calendar:\n    tick:\n      timezone: UTC\n"),
            vec![(
                "spec.calendar.tick".to_string(),
                "calendar event needs a 'schedule' (cron, e.g. '*/5 * * * *' or '@hourly') or \
                 an 'interval' (e.g. '10s')"
                    .to_string()
            )]
        );
    }

    #[test]
    fn calendar_schedule_must_be_cron() {
        let check = |schedule: &str| findings(&format!("  calendar:\n    tick:\n      schedule: \"{schedule}\"\n"));
        for good in [
            "*/5 * * * *",
            "0 9-17 * * MON-FRI",
            "30 4 1,15 jan,jul ?",
            "@hourly",
            "@every 1h30m",
            "CRON_TZ=Europe/Paris 0 6 * * *",
        ] {
            assert_eq!(check(good), vec![], "schedule {good:?}");
        }
        assert_eq!(
            check("* * * *"),
            vec![(
                "spec.calendar.tick.schedule".to_string(),
                "schedule '* * * *' has 4 fields; a cron schedule has 5 (minute hour day-of-month \
                 month day-of-week, e.g. '*/5 * * * *'), or use a descriptor such as '@hourly'"
                    .to_string()
            )]
        );
        assert_eq!(
            check("61 * * * *"),
            vec![(
                "spec.calendar.tick.schedule".to_string(),
                "schedule '61 * * * *': minute field '61' has 61, outside 0-59".to_string()
            )]
        );
        assert_eq!(
            check("0 0 * * fun"),
            vec![(
                "spec.calendar.tick.schedule".to_string(),
                "schedule '0 0 * * fun': day-of-week field 'fun' has 'fun', which is neither a \
                 number nor a known name"
                    .to_string()
            )]
        );
        assert_eq!(
            check("*/0 * * * *"),
            vec![(
                "spec.calendar.tick.schedule".to_string(),
                "schedule '*/0 * * * *': minute field '*/0' has step '0', which is not a positive \
                 number"
                    .to_string()
            )]
        );
        assert_eq!(
            check("@fortnightly"),
            vec![(
                "spec.calendar.tick.schedule".to_string(),
                "schedule '@fortnightly': unknown descriptor '@fortnightly' (known: @yearly, @annually, @monthly, \
                 @weekly, @daily, @midnight, @hourly, @every DURATION)"
                    .to_string()
            )]
        );
        assert_eq!(
            check("@every 5"),
            vec![(
                "spec.calendar.tick.schedule".to_string(),
                "schedule '@every 5': @every '5' has a number without a unit; add one of ns, us, \
                 ms, s, m, h"
                    .to_string()
            )]
        );
    }

    #[test]
    fn calendar_interval_must_be_a_duration() {
        let check = |interval: &str| findings(&format!("  calendar:\n    tick:\n      interval: \"{interval}\"\n"));
        for good in ["10s", "1m", "1h30m", "1.5h", "250ms"] {
            assert_eq!(check(good), vec![], "interval {good:?}");
        }
        assert_eq!(
            check("10 minutes"),
            vec![(
                "spec.calendar.tick.interval".to_string(),
                "interval '10 minutes' is not a duration such as 10s, 1m or 1h30m (no spaces)".to_string()
            )]
        );
        assert_eq!(
            check("10"),
            vec![(
                "spec.calendar.tick.interval".to_string(),
                "interval '10' has a number without a unit; add one of ns, us, ms, s, m, h".to_string()
            )]
        );
        assert_eq!(
            check("0s"),
            vec![(
                "spec.calendar.tick.interval".to_string(),
                "interval '0s' must be longer than zero".to_string()
            )]
        );
    }

    #[test]
    fn calendar_catchup_max_duration_must_be_a_duration() {
        let spec = "  calendar:\n    tick:\n      interval: 10s\n      persistence:\n        catchup:\n          enabled: true\n          maxDuration: soon\n";
        assert_eq!(
            findings(spec),
            vec![(
                "spec.calendar.tick.persistence.catchup.maxDuration".to_string(),
                "maxDuration 'soon' is not a duration such as 10s, 1m or 1h30m".to_string()
            )]
        );
    }

    #[test]
    fn event_names_are_unique_across_kinds() {
        let spec = format!(
            "{}  calendar:\n    example:\n      interval: 10s\n",
            webhook("12000", "/example", "POST")
        );
        assert_eq!(
            findings(&spec),
            vec![(
                "spec.calendar.example".to_string(),
                "event name 'example' is also defined at spec.webhook.example; event names must \
                 be unique within an EventSource because sensors refer to events by name"
                    .to_string()
            )]
        );
    }

    #[test]
    fn unsupported_kinds_warn_per_event() {
        let yaml = "apiVersion: argoproj.io/v1alpha1\nkind: EventSource\nmetadata:\n  name: t\nspec:\n  sns:\n    a:\n      topicArn: q\n      region: us-east-1\n    b:\n      topicArn: r\n      region: us-east-1\n";
        let found = validate(&load(yaml));
        assert_eq!(found.len(), 2);
        assert!(found.iter().all(|f| f.severity == Severity::Warning));
        assert_eq!(found[0].path, "spec.sns.a");
        assert_eq!(found[1].path, "spec.sns.b");
        assert_eq!(
            found[0].message,
            "event source kind 'sns' is not supported by Argon yet; the manifest loads but this \
             event will not run"
        );
    }
}
