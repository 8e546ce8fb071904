//! Active health checks over real probes, and weighted balancing, on static targets.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use gateway_proxy::{Balance, Health, HealthCheck, Probe, Proxy, TargetStatus, Upstream};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;

/// A `/healthz` status meaning: never answer.
const HANG: u16 = 0;

/// Far more than the few probe intervals any change takes.
const SETTLE_WITHIN: Duration = Duration::from_secs(10);

/// An upstream whose `/healthz` answers the status the test sets, counting the answers by
/// status and recording the probes' `Host`; other requests are counted apart.
struct Checked {
    server: UpstreamServer,
    status: Arc<AtomicU16>,
    answers: Arc<Mutex<HashMap<u16, usize>>>,
    probe_hosts: Arc<Mutex<Vec<String>>>,
    served: Arc<AtomicUsize>,
}

impl Checked {
    async fn start(status: u16) -> Self {
        let status = Arc::new(AtomicU16::new(status));
        let answers = Arc::new(Mutex::new(HashMap::new()));
        let probe_hosts = Arc::new(Mutex::new(Vec::new()));
        let served = Arc::new(AtomicUsize::new(0));
        let server = {
            let (status, answers) = (status.clone(), answers.clone());
            let (probe_hosts, served) = (probe_hosts.clone(), served.clone());
            upstream(move |request: Request<Incoming>| {
                let (status, answers) = (status.clone(), answers.clone());
                let (probe_hosts, served) = (probe_hosts.clone(), served.clone());
                async move {
                    if request.uri().path() != "/healthz" {
                        served.fetch_add(1, Ordering::SeqCst);
                        return Response::new(full("served"));
                    }
                    let host = request.headers().get("host").map_or_else(String::new, |h| {
                        String::from_utf8_lossy(h.as_bytes()).into_owned()
                    });
                    probe_hosts.lock().unwrap().push(host);
                    // Read once: the status answered is the one counted.
                    let status = status.load(Ordering::SeqCst);
                    if status == HANG {
                        std::future::pending::<()>().await;
                    }
                    *answers.lock().unwrap().entry(status).or_default() += 1;
                    Response::builder().status(status).body(empty()).unwrap()
                }
            })
            .await
        };
        Self {
            server,
            status,
            answers,
            probe_hosts,
            served,
        }
    }

    fn url(&self) -> String {
        self.server.url()
    }

    fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    fn answered(&self, status: u16) -> usize {
        self.answers
            .lock()
            .unwrap()
            .get(&status)
            .copied()
            .unwrap_or(0)
    }

    fn probe_hosts(&self) -> Vec<String> {
        self.probe_hosts.lock().unwrap().clone()
    }

    fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }
}

fn target(upstream: &Upstream, index: usize) -> TargetStatus {
    upstream.targets().nth(index).unwrap()
}

async fn send_all(client: &mut SendRequest<TestBody>, n: usize) {
    for _ in 0..n {
        let response = client.send_request(get("/")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        text(response).await;
    }
}

#[tokio::test]
async fn a_failing_target_leaves_after_three_failures_and_returns_after_two_passes() {
    bounded(async {
        let sick = Checked::start(200).await;
        let well = Checked::start(200).await;
        // The interval is long against the 5 ms polling, so that the probe answers counted
        // when the health changes are exactly those that changed it.
        let check = HealthCheck::new("/healthz")
            .interval(Duration::from_millis(300))
            .timeout(Duration::from_millis(200));
        let upstream = Upstream::builder("svc", [sick.url(), well.url()])
            .health_check(check)
            .build()
            .unwrap();
        let gateway = gateway(Proxy::new(upstream.clone())).await;
        let mut client = h1_client(gateway).await;
        eventually(SETTLE_WITHIN, "the first probes pass", || {
            upstream
                .targets()
                .all(|t| t.last_probe == Some(Probe::Passed(200)) && t.health == Health::Healthy)
                .then_some(())
        })
        .await;

        sick.set_status(503);
        let (failures, last_probe) = eventually(SETTLE_WITHIN, "the sick target leaves", || {
            let status = target(&upstream, 0);
            (status.health == Health::Unhealthy).then(|| (sick.answered(503), status.last_probe))
        })
        .await;
        assert_eq!(failures, 3);
        assert_eq!(last_probe, Some(Probe::Status(503)));
        assert_eq!(target(&upstream, 1).health, Health::Healthy);
        assert!(upstream.is_available());

        let (sick_served, well_served) = (sick.served(), well.served());
        send_all(&mut client, 20).await;
        assert_eq!(sick.served(), sick_served);
        assert_eq!(well.served(), well_served + 20);

        let passes_before = sick.answered(200);
        sick.set_status(200);
        let (passes, last_probe) = eventually(SETTLE_WITHIN, "the sick target returns", || {
            let status = target(&upstream, 0);
            (status.health == Health::Healthy)
                .then(|| (sick.answered(200) - passes_before, status.last_probe))
        })
        .await;
        assert_eq!(passes, 2);
        assert_eq!(last_probe, Some(Probe::Passed(200)));

        let (sick_served, well_served) = (sick.served(), well.served());
        send_all(&mut client, 20).await;
        assert_eq!(sick.served() - sick_served, 10);
        assert_eq!(well.served() - well_served, 10);
    })
    .await;
}

#[tokio::test]
async fn a_probe_that_never_gets_an_answer_times_out() {
    bounded(async {
        let hung = Checked::start(HANG).await;
        let well = Checked::start(200).await;
        let check = HealthCheck::new("/healthz")
            .interval(Duration::from_millis(250))
            .timeout(Duration::from_millis(150));
        let upstream = Upstream::builder("svc", [hung.url(), well.url()])
            .health_check(check)
            .build()
            .unwrap();
        let (probes, last_probe) = eventually(SETTLE_WITHIN, "the hung target leaves", || {
            let status = target(&upstream, 0);
            (status.health == Health::Unhealthy)
                .then(|| (hung.probe_hosts().len(), status.last_probe))
        })
        .await;
        assert_eq!(last_probe, Some(Probe::TimedOut));
        assert_eq!(probes, 3);
        // It got the probes, yet never answered one.
        assert!(hung.answers.lock().unwrap().is_empty());
        assert!(upstream.discovery_counters().probes_failed() >= 3);
        assert_eq!(target(&upstream, 1).health, Health::Healthy);
        assert!(upstream.is_available());
    })
    .await;
}

#[tokio::test]
async fn with_every_target_unhealthy_requests_still_go_to_them() {
    bounded(async {
        let targets = [Checked::start(503).await, Checked::start(503).await];
        let check = HealthCheck::new("/healthz")
            .interval(Duration::from_millis(100))
            .timeout(Duration::from_millis(100));
        let upstream = Upstream::builder("svc", targets.iter().map(Checked::url))
            .health_check(check)
            .build()
            .unwrap();
        assert!(upstream.is_available());
        eventually(SETTLE_WITHIN, "every target leaves", || {
            upstream
                .targets()
                .all(|t| t.health == Health::Unhealthy)
                .then_some(())
        })
        .await;
        assert!(!upstream.is_available());
        assert!(upstream.discovery_counters().probes_failed() >= 6);
        assert_eq!(upstream.discovery_counters().probes_passed(), 0);

        let gateway = gateway(Proxy::new(upstream.clone())).await;
        let mut client = h1_client(gateway).await;
        send_all(&mut client, 20).await;
        // Fail open over all of them, not onto one.
        let served: Vec<usize> = targets.iter().map(Checked::served).collect();
        assert_eq!(served.iter().sum::<usize>(), 20);
        assert!(served.iter().all(|&n| n > 0), "{served:?}");
        assert!(!upstream.is_available());
    })
    .await;
}

#[tokio::test]
async fn expected_statuses_replace_any_2xx() {
    bounded(async {
        let ok = Checked::start(200).await;
        let no_content = Checked::start(204).await;
        let check = HealthCheck::new("/healthz")
            .interval(Duration::from_millis(100))
            .timeout(Duration::from_millis(100))
            .expect_status([204]);
        let upstream = Upstream::builder("svc", [ok.url(), no_content.url()])
            .health_check(check)
            .build()
            .unwrap();
        eventually(SETTLE_WITHIN, "the 200 target leaves", || {
            (target(&upstream, 0).health == Health::Unhealthy).then_some(())
        })
        .await;
        assert_eq!(target(&upstream, 0).last_probe, Some(Probe::Status(200)));
        let passing = target(&upstream, 1);
        assert_eq!(passing.health, Health::Healthy);
        assert_eq!(passing.last_probe, Some(Probe::Passed(204)));
        assert!(no_content.answered(204) >= 3);
    })
    .await;
}

#[tokio::test]
async fn probes_carry_the_configured_host_or_the_targets_authority() {
    bounded(async {
        let named = Checked::start(200).await;
        let plain = Checked::start(200).await;
        let check = || {
            HealthCheck::new("/healthz")
                .interval(Duration::from_millis(100))
                .timeout(Duration::from_millis(100))
        };
        let with_host = Upstream::builder("named", [named.url()])
            .health_check(check().host("health.internal"))
            .build()
            .unwrap();
        let without = Upstream::builder("plain", [plain.url()])
            .health_check(check())
            .build()
            .unwrap();
        eventually(SETTLE_WITHIN, "both are probed twice", || {
            (named.answered(200) >= 2 && plain.answered(200) >= 2).then_some(())
        })
        .await;
        assert!(
            named.probe_hosts().iter().all(|h| h == "health.internal"),
            "{:?}",
            named.probe_hosts()
        );
        let authority = plain.server.addr.to_string();
        assert!(
            plain.probe_hosts().iter().all(|h| *h == authority),
            "{:?}",
            plain.probe_hosts()
        );
        for upstream in [&with_host, &without] {
            assert_eq!(target(upstream, 0).last_probe, Some(Probe::Passed(200)));
        }
    })
    .await;
}

#[tokio::test]
async fn weights_share_requests_between_static_targets() {
    bounded(async {
        let heavy = echo().await;
        let light = echo().await;
        let counts =
            |before: (usize, usize)| (heavy.requests() - before.0, light.requests() - before.1);

        // Smooth weighted round robin: exactly the weights, cycle after cycle.
        let upstream = Upstream::builder("svc", [(heavy.url(), 9), (light.url(), 1)])
            .build()
            .unwrap();
        let mut client = h1_client(gateway(Proxy::new(upstream)).await).await;
        let before = (heavy.requests(), light.requests());
        send_all(&mut client, 1000).await;
        assert_eq!(counts(before), (900, 100));

        // Two draws in proportion to weight: the weights' shares, give or take 3 points.
        let upstream = Upstream::builder("svc", [(heavy.url(), 9), (light.url(), 1)])
            .balance(Balance::LeastRequest)
            .build()
            .unwrap();
        let mut client = h1_client(gateway(Proxy::new(upstream)).await).await;
        let before = (heavy.requests(), light.requests());
        send_all(&mut client, 1000).await;
        let (heavy_share, light_share) = counts(before);
        assert_eq!(heavy_share + light_share, 1000);
        assert!(
            (870..=930).contains(&heavy_share),
            "{heavy_share}/{light_share}"
        );

        // Weight 0 gets nothing while the other target is up.
        for balance in [Balance::RoundRobin, Balance::LeastRequest] {
            let upstream = Upstream::builder("svc", [(heavy.url(), 1), (light.url(), 0)])
                .balance(balance)
                .build()
                .unwrap();
            let mut client = h1_client(gateway(Proxy::new(upstream)).await).await;
            let before = (heavy.requests(), light.requests());
            send_all(&mut client, 100).await;
            assert_eq!(counts(before), (100, 0), "{balance:?}");
        }
    })
    .await;
}
