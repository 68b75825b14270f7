//! Each worker's monoio runtime: the io driver, how an io_uring ring finishes completions, and
//! optional pinning of the worker to a core.
//!
//! Everything is resolved once at startup ([`RuntimeSetup::resolve`]), so every worker runs the
//! same setup and the startup log line can say which one. On a kernel that lacks the ring flags
//! of the requested [`UringTaskWork`], confab falls back to the kernel's default rather than
//! refusing to start.

use std::future::Future;
use std::io;

use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};

use super::StartError;
use crate::config::{Driver, UringTaskWork};

/// Ring size used only to probe which setup flags the kernel accepts.
const PROBE_RING_ENTRIES: u32 = 8;

/// How every worker's runtime is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeSetup {
    /// The driver in use (never [`Driver::Auto`]).
    pub driver: Driver,
    /// How io_uring rings finish completions (what the kernel accepted; meaningless on epoll).
    pub task_work: UringTaskWork,
    /// Whether workers are pinned to cores.
    pub pin_workers: bool,
}

impl RuntimeSetup {
    /// Picks the concrete driver for [`Driver::Auto`], checks an explicit io_uring request, and
    /// falls back to [`UringTaskWork::Interrupt`] when the kernel refuses the requested flags.
    pub fn resolve(
        driver: Driver,
        task_work: UringTaskWork,
        pin_workers: bool,
    ) -> Result<RuntimeSetup, StartError> {
        let driver = resolve_driver(driver)?;
        let task_work = match driver {
            Driver::IoUring if !kernel_accepts(task_work) => {
                tracing::warn!(
                    requested = task_work_name(task_work),
                    "this kernel refuses the io_uring setup flags; using interrupt task work"
                );
                UringTaskWork::Interrupt
            }
            _ => task_work,
        };
        Ok(RuntimeSetup {
            driver,
            task_work,
            pin_workers,
        })
    }

    /// The setup's name for the startup log line: the driver, and the task work on io_uring.
    pub fn describe(&self) -> String {
        match self.driver {
            Driver::IoUring => format!("io_uring ({} task work)", task_work_name(self.task_work)),
            other => driver_name(other).to_string(),
        }
    }

    /// Pins the calling worker thread (the `index`-th) to a core if the setup says so. A core
    /// that cannot be had is logged and the worker runs unpinned.
    pub fn pin_worker(&self, index: usize) {
        if !self.pin_workers {
            return;
        }
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let Some(core) = cores.get(index % cores.len().max(1)) else {
            tracing::warn!(
                worker = index,
                "no core to pin to; the worker runs unpinned"
            );
            return;
        };
        if !core_affinity::set_for_current(*core) {
            tracing::warn!(
                worker = index,
                core = core.id,
                "pinning failed; the worker runs unpinned"
            );
        }
    }

    /// Runs the future made by `make` on a new runtime of this setup, on the calling thread.
    pub fn block_on<F, Fut>(&self, make: F) -> io::Result<Fut::Output>
    where
        F: FnOnce() -> Fut,
        Fut: Future,
    {
        match self.driver {
            Driver::IoUring => Ok(RuntimeBuilder::<IoUringDriver>::new()
                .uring_builder(uring_builder(self.task_work))
                .enable_timer()
                .build()?
                .block_on(make())),
            Driver::Epoll | Driver::Auto => Ok(RuntimeBuilder::<LegacyDriver>::new()
                .enable_timer()
                .build()?
                .block_on(make())),
        }
    }
}

/// Picks the concrete driver for [`Driver::Auto`] and checks an explicit io_uring request.
pub fn resolve_driver(requested: Driver) -> Result<Driver, StartError> {
    let uring = monoio::utils::detect_uring();
    match requested {
        Driver::Auto if uring => Ok(Driver::IoUring),
        Driver::Auto => Ok(Driver::Epoll),
        Driver::IoUring if !uring => Err(StartError::NoIoUring),
        explicit => Ok(explicit),
    }
}

pub fn driver_name(driver: Driver) -> &'static str {
    match driver {
        Driver::Auto => "auto",
        Driver::IoUring => "io_uring",
        Driver::Epoll => "epoll",
    }
}

fn task_work_name(task_work: UringTaskWork) -> &'static str {
    match task_work {
        UringTaskWork::Cooperative => "cooperative",
        UringTaskWork::Deferred => "deferred",
        UringTaskWork::Interrupt => "interrupt",
    }
}

/// The ring setup of `task_work`. Every flag here assumes what monoio guarantees: a ring is
/// created, submitted to and waited on by its one worker thread only.
fn uring_builder(task_work: UringTaskWork) -> io_uring::Builder {
    let mut builder = io_uring::IoUring::builder();
    match task_work {
        UringTaskWork::Cooperative => {
            builder
                .setup_coop_taskrun()
                .setup_taskrun_flag()
                .setup_single_issuer();
        }
        UringTaskWork::Deferred => {
            builder.setup_single_issuer().setup_defer_taskrun();
        }
        UringTaskWork::Interrupt => {}
    }
    builder
}

/// Whether this kernel sets up a ring with the flags of `task_work`.
fn kernel_accepts(task_work: UringTaskWork) -> bool {
    uring_builder(task_work).build(PROBE_RING_ENTRIES).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_work_mode_runs_a_runtime_or_falls_back() {
        if !monoio::utils::detect_uring() {
            return;
        }
        for requested in [
            UringTaskWork::Cooperative,
            UringTaskWork::Deferred,
            UringTaskWork::Interrupt,
        ] {
            let setup = RuntimeSetup::resolve(Driver::IoUring, requested, false).expect("resolves");
            let answer = setup
                .block_on(|| async {
                    monoio::time::sleep(std::time::Duration::from_millis(1)).await;
                    42
                })
                .expect("runtime builds");
            assert_eq!(answer, 42, "{requested:?}");
            assert!(
                setup.describe().starts_with("io_uring ("),
                "{}",
                setup.describe()
            );
        }
    }

    #[test]
    fn interrupt_task_work_is_accepted_wherever_io_uring_is() {
        if monoio::utils::detect_uring() {
            assert!(kernel_accepts(UringTaskWork::Interrupt));
        }
    }

    #[test]
    fn epoll_is_described_without_task_work() {
        let setup = RuntimeSetup::resolve(Driver::Epoll, UringTaskWork::Cooperative, false)
            .expect("epoll resolves");
        assert_eq!(setup.describe(), "epoll");
    }
}
