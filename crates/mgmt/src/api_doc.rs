//! `/api/index.html`: the reference of the endpoints this server routes
//! (`routes.rs`, `params_api.rs`), rendered from [`ROUTES`]. The console's
//! browser test requests every GET path listed here without placeholders
//! and fails on a 404, so an entry for a route that does not exist is
//! caught; a new route is added here in the same change as in `routes.rs`.

/// One documented endpoint.
pub(crate) struct Route {
    /// Methods it answers, as in an `Allow` header.
    pub methods: &'static str,
    /// Path under `/api`, placeholders in braces (`{vhost}` is `%2F` for `/`).
    pub path: &'static str,
    /// What it does.
    pub what: &'static str,
}

/// Shorthand for a table row.
const fn r(methods: &'static str, path: &'static str, what: &'static str) -> Route {
    Route {
        methods,
        path,
        what,
    }
}

/// Every endpoint, in RabbitMQ's reference order.
pub(crate) const ROUTES: &[Route] = &[
    r("GET", "/api/overview", "Cluster-wide totals, rates, listeners; with lengths_age/msg_rates_age (+ _incr, seconds) the *_details carry samples"),
    r("GET", "/api/cluster-name", "The cluster's name"),
    r("GET", "/api/nodes", "The node (one: warren does not cluster)"),
    r("GET", "/api/nodes/{node}", "One node"),
    r("GET", "/api/nodes/{node}/memory", "Memory breakdown (not_available)"),
    r("GET", "/api/extensions", "Console plugins (none)"),
    r("GET", "/api/whoami", "The authenticated user and its tags"),
    r("GET", "/api/auth", "Login settings (no OAuth); unauthenticated"),
    r("GET", "/api/vhosts", "Virtual hosts [paged]"),
    r("GET", "/api/vhosts/{vhost}", "One virtual host"),
    r("GET", "/api/connections", "Connections [paged]"),
    r("GET", "/api/vhosts/{vhost}/connections", "Connections of a vhost [paged]"),
    r("GET, DELETE", "/api/connections/{name}", "One connection; DELETE closes it (X-Reason header: the reason sent)"),
    r("GET", "/api/connections/{name}/channels", "Channels of a connection [paged]"),
    r("GET", "/api/channels", "Channels [paged]"),
    r("GET", "/api/vhosts/{vhost}/channels", "Channels of a vhost [paged]"),
    r("GET", "/api/channels/{name}", "One channel"),
    r("GET", "/api/consumers", "Consumers [paged]"),
    r("GET", "/api/consumers/{vhost}", "Consumers of a vhost [paged]"),
    r("GET", "/api/exchanges", "Exchanges [paged]"),
    r("GET", "/api/exchanges/{vhost}", "Exchanges of a vhost [paged]"),
    r("GET, PUT, DELETE", "/api/exchanges/{vhost}/{name}", "One exchange; PUT {type, durable, auto_delete, internal, arguments}; DELETE ?if-unused=true"),
    r("GET", "/api/exchanges/{vhost}/{name}/bindings/source", "Bindings from the exchange"),
    r("GET", "/api/exchanges/{vhost}/{name}/bindings/destination", "Bindings to the exchange"),
    r("POST", "/api/exchanges/{vhost}/{name}/publish", "Publish {properties, routing_key, payload, payload_encoding} → {routed}"),
    r("GET", "/api/queues", "Queues [paged]"),
    r("GET", "/api/queues/{vhost}", "Queues of a vhost [paged]"),
    r("GET, PUT, DELETE", "/api/queues/{vhost}/{name}", "One queue; PUT {durable, auto_delete, arguments}; DELETE ?if-empty=true&if-unused=true"),
    r("GET", "/api/queues/{vhost}/{name}/bindings", "Bindings of a queue (with the default exchange's)"),
    r("DELETE", "/api/queues/{vhost}/{name}/contents", "Purge"),
    r("POST", "/api/queues/{vhost}/{name}/get", "Get {count, ackmode, encoding, truncate}"),
    r("GET", "/api/bindings", "Bindings [paged]"),
    r("GET", "/api/bindings/{vhost}", "Bindings of a vhost [paged]"),
    r("GET, POST", "/api/bindings/{vhost}/e/{exchange}/q/{queue}", "Bindings between an exchange and a queue; POST {routing_key, arguments} binds"),
    r("GET, POST", "/api/bindings/{vhost}/e/{source}/e/{destination}", "Exchange-to-exchange bindings; POST binds"),
    r("GET, DELETE", "/api/bindings/{vhost}/e/{exchange}/{q|e}/{destination}/{props}", "One binding by its properties_key; DELETE unbinds"),
    r("GET, POST", "/api/definitions", "Export / import (JSON body) all definitions"),
    r("GET, POST", "/api/definitions/{vhost}", "Export / import one vhost's definitions"),
    r("GET", "/api/policies", "Policies"),
    r("GET", "/api/policies/{vhost}", "Policies of a vhost"),
    r("GET, PUT, DELETE", "/api/policies/{vhost}/{name}", "One policy; PUT {pattern, definition, priority, apply-to}"),
    r("GET", "/api/operator-policies", "Operator policies"),
    r("GET", "/api/operator-policies/{vhost}", "Operator policies of a vhost"),
    r("GET, PUT, DELETE", "/api/operator-policies/{vhost}/{name}", "One operator policy"),
    r("GET", "/api/parameters", "Runtime parameters"),
    r("GET", "/api/parameters/{component}", "Parameters of a component"),
    r("GET", "/api/parameters/{component}/{vhost}", "Parameters of a component in a vhost"),
    r("GET, PUT, DELETE", "/api/parameters/{component}/{vhost}/{name}", "One parameter; PUT {value}"),
    r("GET", "/api/shovels", "Dynamic shovels (component `shovel` parameters) and their states"),
    r("GET", "/api/shovels/{vhost}", "Dynamic shovels of a vhost"),
    r("GET", "/api/global-parameters", "Global parameters"),
    r("GET, PUT, DELETE", "/api/global-parameters/{name}", "One global parameter; PUT {value}"),
    r("GET", "/api/health/checks/alarms", "503 while an alarm is in effect"),
    r("GET", "/api/health/checks/local-alarms", "503 while a local alarm is in effect"),
    r("GET", "/api/health/checks/certificate-expiration/{within}/{unit}", "503 if a certificate expires within the period"),
    r("GET", "/api/health/checks/port-listener/{port}", "503 unless a listener is on the port"),
    r("GET", "/api/health/checks/protocol-listener/{protocol}", "503 unless a listener speaks the protocol"),
    r("GET", "/api/health/checks/virtual-hosts", "503 unless every vhost runs"),
    r("GET", "/api/health/checks/node-is-quorum-critical", "Always ok (no quorum replicas elsewhere)"),
    r("GET", "/api/health/checks/is-in-service", "Probe: ok while serving; unauthenticated"),
    r("GET", "/api/health/checks/ready-to-serve-clients", "Probe; unauthenticated"),
    r("GET", "/api/health/checks/below-node-connection-limit", "Probe; unauthenticated"),
    r("GET", "/api/aliveness-test/{vhost}", "{status: ok} if the vhost exists"),
];

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The reference page.
pub(crate) fn page() -> String {
    let mut rows = String::new();
    for r in ROUTES {
        rows.push_str(&format!(
            "<tr><td>{}</td><td><code class=\"path\">{}</code></td><td>{}</td></tr>\n",
            esc(r.methods),
            esc(r.path),
            esc(r.what)
        ));
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>warren: HTTP API reference</title><link rel=\"stylesheet\" href=\"/console/app.css\"></head>\
<body class=\"doc\"><main><h1>HTTP API reference</h1>\
<p>RabbitMQ 3.10's management API as warren serves it. Every request but <code>/api/auth</code> and the \
probe-style health checks takes HTTP Basic credentials. Lists marked [paged] take <code>page</code>, \
<code>page_size</code> (≤ 500), <code>name</code>, <code>use_regex</code>, <code>sort</code>, \
<code>sort_reverse</code> and <code>columns</code>. Errors are <code>{{\"error\":…,\"reason\":…}}</code>.</p>\
<table id=\"routes\"><thead><tr><th scope=\"col\">Methods</th><th scope=\"col\">Path</th>\
<th scope=\"col\">What</th></tr></thead><tbody>\n{rows}</tbody></table>\
<p><a href=\"/\">Back to the console</a></p></main></body></html>\n"
    )
}
