//! Lifecycle tests of the simulator handle.

use super::*;

#[tokio::test]
async fn urls_point_at_loopback_even_when_bound_to_all_interfaces() {
    let handle = start("0.0.0.0:0".parse().unwrap(), SimulatorConfig::default())
        .await
        .unwrap();
    let port = handle.addr().port();
    assert_eq!(handle.base_url(), format!("http://127.0.0.1:{port}"));
    assert_eq!(
        handle.token_url(),
        format!("http://127.0.0.1:{port}/auth/o2/token")
    );
    handle.stop().await;
}

#[tokio::test]
async fn binding_a_taken_port_is_a_bind_error() {
    let first = start("127.0.0.1:0".parse().unwrap(), SimulatorConfig::default())
        .await
        .unwrap();
    let second = start(first.addr(), SimulatorConfig::default()).await;
    assert!(matches!(second, Err(SimulatorError::Bind { .. })));
    first.stop().await;
}

#[test]
fn simulator_starts_inside_an_actix_system() {
    actix::System::new().block_on(async {
        let handle = start("127.0.0.1:0".parse().unwrap(), SimulatorConfig::default())
            .await
            .unwrap();
        let (client_id, _, _) = handle.credentials();
        assert_eq!(client_id, DEFAULT_CLIENT_ID);
        assert_eq!(handle.stats().creates_total, 0);
        handle.stop().await;
    });
}
