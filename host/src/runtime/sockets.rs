//! `wasi:sockets` socket creation, refused and reported. No plugin is
//! granted network access (outbound HTTP, when granted, goes through its own
//! gate), so creating a TCP or UDP socket is a call outside the grants: the
//! guest gets `access-denied` — what WASI answers anyway — and the attempt
//! is counted and reported like any other refusal (an aggregated
//! `AccessViolation` on `security`, see [`super::violations`]).
//!
//! These definitions shadow wasmtime-wasi's in the linker. Name lookups
//! (`ip-name-lookup`) and file accesses outside the preopened directories
//! are refused inside the guest or by WASI without a host hook, and are not
//! reported.

use wasmtime::component::{HasSelf, Linker, Resource};
use wasmtime_wasi::p2::bindings::sockets::network::{self, ErrorCode, IpAddressFamily};
use wasmtime_wasi::p2::bindings::sockets::tcp_create_socket;
use wasmtime_wasi::p2::bindings::sync::sockets::udp_create_socket;
use wasmtime_wasi::p2::{SocketError, SocketResult, TcpSocket, UdpSocket};
use wasmtime_wasi::sockets::WasiSocketsView;

use super::state::PluginState;

/// The `violation_type` of a socket attempt.
const NETWORK_DENIED: &str = "network_denied";

/// Replaces WASI's socket constructors in `linker` with refusing ones.
///
/// # Errors
/// A linker error (the WASI interfaces must already be defined).
pub(crate) fn shadow(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    tcp_create_socket::add_to_linker::<_, HasSelf<PluginState>>(linker, |s| s)?;
    udp_create_socket::add_to_linker::<_, HasSelf<PluginState>>(linker, |s| s)?;
    linker.allow_shadowing(false);
    Ok(())
}

impl PluginState {
    fn deny_socket(&self, kind: &str, family: IpAddressFamily) -> wasmtime_wasi::p2::SocketError {
        let family = match family {
            IpAddressFamily::Ipv4 => "ipv4",
            IpAddressFamily::Ipv6 => "ipv6",
        };
        let resource = format!("network:{kind}:{family}");
        let action = format!("create_{kind}_socket");
        let now = std::time::Instant::now();
        if let Some(report) = self
            .ctx
            .violations
            .record(now, &action, NETWORK_DENIED, &resource)
        {
            super::host_impl::report_refusal(&self.ctx, &report);
        }
        ErrorCode::AccessDenied.into()
    }
}

impl tcp_create_socket::Host for PluginState {
    fn create_tcp_socket(&mut self, family: IpAddressFamily) -> SocketResult<Resource<TcpSocket>> {
        Err(self.deny_socket("tcp", family))
    }
}

impl udp_create_socket::Host for PluginState {
    fn create_udp_socket(&mut self, family: IpAddressFamily) -> SocketResult<Resource<UdpSocket>> {
        Err(self.deny_socket("udp", family))
    }
}

/// The `network` interface the constructors' bindings depend on, delegated
/// to WASI's own implementation.
impl network::Host for PluginState {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
        network::Host::convert_error_code(&mut self.sockets(), error)
    }

    fn network_error_code(
        &mut self,
        err: Resource<network::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        network::Host::network_error_code(&mut self.sockets(), err)
    }
}

impl network::HostNetwork for PluginState {
    fn drop(&mut self, this: Resource<network::Network>) -> wasmtime::Result<()> {
        network::HostNetwork::drop(&mut self.sockets(), this)
    }
}
