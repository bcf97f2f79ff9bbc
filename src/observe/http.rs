//! The HTTP endpoints: Prometheus `/metrics` on `metrics.address`, and `/healthz` (the
//! process is alive) and `/readyz` (it is producing, not stopping) on `http.address`.
//! One address may serve both.
//!
//! Each address gets one small thread with a blocking tiny_http server; they only read
//! shared counters, so they cannot slow the data path down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use tiny_http::{Header, Request, Response, Server};

use crate::error::Error;
use crate::observe::metrics::Metrics;
use crate::shutdown::Shutdown;

/// The running listeners; `stop` (or drop) shuts them down.
pub struct Endpoints {
    servers: Vec<(Arc<Server>, Option<JoinHandle<()>>)>,
}

/// What one listener answers.
#[derive(Clone, Copy)]
struct Routes {
    metrics: bool,
    health: bool,
}

/// Binds the configured addresses and starts serving. Binding errors name the setting.
pub fn start(
    metrics_address: Option<SocketAddr>,
    http_address: Option<SocketAddr>,
    metrics: Arc<Metrics>,
    shutdown: Arc<Shutdown>,
) -> Result<Endpoints, Error> {
    let mut listeners: Vec<(SocketAddr, &'static str, Routes)> = Vec::new();
    if let Some(a) = metrics_address {
        listeners.push((
            a,
            "metrics.address",
            Routes {
                metrics: true,
                health: false,
            },
        ));
    }
    if let Some(a) = http_address {
        match listeners
            .iter_mut()
            .find(|(b, _, _)| *b == a && a.port() != 0)
        {
            Some((_, _, routes)) => routes.health = true,
            None => listeners.push((
                a,
                "http.address",
                Routes {
                    metrics: false,
                    health: true,
                },
            )),
        }
    }
    let mut endpoints = Endpoints {
        servers: Vec::new(),
    };
    for (address, key, routes) in listeners {
        let server = Server::http(address).map_err(|source| Error::Listen {
            key,
            address,
            source,
        })?;
        let server = Arc::new(server);
        let bound = server
            .server_addr()
            .to_ip()
            .map_or_else(|| address.to_string(), |a| a.to_string());
        let paths = match (routes.metrics, routes.health) {
            (true, true) => "/metrics, /healthz and /readyz",
            (true, false) => "/metrics",
            _ => "/healthz and /readyz",
        };
        log::info!("serving {paths} on http://{bound}");
        let (s, m, sd) = (
            Arc::clone(&server),
            Arc::clone(&metrics),
            Arc::clone(&shutdown),
        );
        let handle = std::thread::Builder::new()
            .name(format!("iotblast-http-{}", bound))
            .spawn(move || {
                for request in s.incoming_requests() {
                    respond(request, routes, &m, &sd);
                }
            })
            .map_err(|source| Error::Thread {
                name: "iotblast-http".into(),
                source,
            })?;
        endpoints.servers.push((server, Some(handle)));
    }
    Ok(endpoints)
}

fn respond(request: Request, routes: Routes, metrics: &Metrics, shutdown: &Shutdown) {
    let path = request.url().split('?').next().unwrap_or("").to_owned();
    let text = |body: String, status: u16, content_type: &str| {
        let header =
            Header::from_bytes("Content-Type", content_type).expect("static header is valid");
        Response::from_string(body)
            .with_status_code(status)
            .with_header(header)
    };
    let plain = "text/plain; charset=utf-8";
    let response = match path.as_str() {
        "/metrics" if routes.metrics => text(
            metrics.render(),
            200,
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        "/healthz" if routes.health => text("ok\n".into(), 200, plain),
        "/readyz" if routes.health => match shutdown.reason() {
            None => text("ready\n".into(), 200, plain),
            Some(reason) => text(format!("stopping: {reason}\n"), 503, plain),
        },
        _ => text("not found\n".into(), 404, plain),
    };
    if let Err(e) = request.respond(response) {
        log::debug!("http: could not answer {path}: {e}");
    }
}

impl Endpoints {
    /// Stops every listener and waits for its thread.
    pub fn stop(&mut self) {
        for (server, handle) in &mut self.servers {
            server.unblock();
            if let Some(h) = handle.take() {
                let _ = h.join();
            }
        }
    }
}

impl Drop for Endpoints {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `iotblast healthcheck`: one GET of `url` within `timeout`; healthy on HTTP 200.
/// Loopback or any host: the container probes itself, Kubernetes uses its own probes.
pub fn healthcheck(url: &str, timeout: &str) -> Result<(), Error> {
    use crate::units::{in_range, parse_duration, Dur};
    let limit = parse_duration("--timeout", timeout)?;
    in_range("--timeout", Dur(limit), Dur::ms(10), Dur::ms(60_000))?;
    if !url.starts_with("http://") {
        return Err(crate::error::ConfigError::new(
            "--url",
            format!("must be an http:// URL, got {url:?}"),
        )
        .into());
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(limit))
        .http_status_as_error(false)
        .build()
        .into();
    let unhealthy = |reason: String| Error::Unhealthy {
        url: url.to_owned(),
        reason,
    };
    let response = agent
        .get(url)
        .call()
        .map_err(|e| unhealthy(e.to_string()))?;
    match response.status().as_u16() {
        200 => Ok(()),
        code => Err(unhealthy(format!("HTTP {code}"))),
    }
}
