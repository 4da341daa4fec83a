//! The call's time budget and outbound requests: time the guest spends
//! waiting in the host while one of its requests is in flight does not
//! count against `limits.call_timeout_ms`.
//!
//! The budget is an epoch deadline; the ticker keeps advancing the epoch
//! while the guest is blocked in a host call (`pollable.block`, a blocking
//! read of a response body), and wasm checks the deadline only when it runs
//! again. Without this module a guest waiting 2 s for a response under a
//! 1 s budget would trap as soon as the response arrived (measured: see
//! `docs/manifest.md`). So, for a plugin with outbound grants:
//!
//! - a call hook measures each host call made while a request of this
//!   instance is in flight (from the gate admitting it until its response is
//!   read to the end, fails, or is dropped) and adds its length to a credit;
//! - when the deadline is reached, the epoch callback extends it by the
//!   credit (in ticks, rounded up) and clears the credit; with no credit the
//!   call traps as before (`Trap::Interrupt`).
//!
//! The guest's own computing therefore stays within the budget; each wait is
//! bounded by `limits.http_timeout_ms` instead (connect, first byte, between
//! bytes). Plugins without outbound grants get neither hook: their budget is
//! the call's wall time, as it always was.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::{CallHook, Store, UpdateDeadline};

use crate::runtime::state::PluginState;
use crate::runtime::EPOCH_TICK;

/// One instance's requests in flight and the waiting time credited to the
/// current call.
#[derive(Debug, Default)]
pub(crate) struct WaitClock {
    /// Requests of this instance in flight; the gate's exchanges count
    /// themselves in and out.
    in_flight: Arc<AtomicUsize>,
    /// When the current host call started, if a request was in flight then.
    entered: Option<Instant>,
    /// Waiting not yet added to the deadline.
    credit: Duration,
}

impl WaitClock {
    /// The in-flight counter, for the gate.
    pub(crate) fn in_flight(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.in_flight)
    }

    /// A call starts: nothing is credited yet.
    pub(crate) fn reset(&mut self) {
        self.entered = None;
        self.credit = Duration::ZERO;
    }

    fn on(&mut self, hook: CallHook) {
        match hook {
            CallHook::CallingHost => {
                self.entered = (self.in_flight.load(Ordering::Relaxed) > 0).then(Instant::now);
            }
            CallHook::ReturningFromHost => {
                if let Some(t) = self.entered.take() {
                    self.credit += t.elapsed();
                }
            }
            CallHook::CallingWasm | CallHook::ReturningFromWasm => {}
        }
    }

    /// The credit in epoch ticks (rounded up), cleared.
    fn take_ticks(&mut self) -> u64 {
        let credit = std::mem::take(&mut self.credit);
        let tick = EPOCH_TICK.as_nanos();
        u64::try_from(credit.as_nanos().div_ceil(tick)).unwrap_or(u64::MAX)
    }
}

/// Installs the call hook and the epoch callback on `store` (a plugin with
/// outbound grants).
pub(crate) fn install(store: &mut Store<PluginState>) {
    store.call_hook(|mut ctx, hook| {
        ctx.data_mut().wait.on(hook);
        Ok(())
    });
    store.epoch_deadline_callback(|mut ctx| {
        Ok(match ctx.data_mut().wait.take_ticks() {
            0 => UpdateDeadline::Interrupt,
            ticks => UpdateDeadline::Continue(ticks),
        })
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_host_calls_during_a_request_are_credited() {
        let mut w = WaitClock::default();
        w.on(CallHook::CallingHost);
        std::thread::sleep(Duration::from_millis(15));
        w.on(CallHook::ReturningFromHost);
        assert_eq!(w.take_ticks(), 0, "no request in flight");

        let n = w.in_flight();
        n.fetch_add(1, Ordering::Relaxed);
        w.on(CallHook::CallingHost);
        std::thread::sleep(Duration::from_millis(25));
        w.on(CallHook::ReturningFromHost);
        let ticks = w.take_ticks();
        assert!((3..10).contains(&ticks), "{ticks} ticks for 25 ms");
        assert_eq!(w.take_ticks(), 0, "taken once");

        w.on(CallHook::CallingHost);
        w.reset();
        w.on(CallHook::ReturningFromHost);
        assert_eq!(w.take_ticks(), 0, "a new call starts with no credit");
    }
}
