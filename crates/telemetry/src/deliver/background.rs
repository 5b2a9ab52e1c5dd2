//! Batch CPU work at idle priority, taken back to normal priority when delivery falls behind.
//!
//! Pacing (see [`crate::deliver::pace`]) bounds how long a batch holds a core, but a request thread that
//! wakes on that core still waits up to a slice, and so do the client and the provider on the
//! same host. A thread under `SCHED_IDLE` gives its core up the moment anything else wants it,
//! so conversion and encoding only ever use CPU that nothing else asked for.
//!
//! On a saturated host an idle thread gets almost no CPU, and an unprivileged process can
//! never raise a thread's priority again. So the idle work has threads of its own, and
//! [`run`] hands a job there only while no destination is behind. A job still unfinished when
//! a destination falls behind (a queue a quarter full, the signal pacing uses), or after
//! [`BACKSTOP`], runs at normal priority on the blocking pool instead: taken back if the idle
//! thread has not started it, run a second time if it has (jobs are pure, so both runs give
//! the same result, and the idle run is told to stop). Delivery therefore keeps its fair share
//! under load, as before, and gets out of the way when there is none.
//!
//! The gateway starts the idle threads only with `telemetry.delivery_priority = "idle"`: on the
//! benchmark VM, once the batch work was paced, idle priority did not lower the added p99 at
//! one request at a time and raised the p99.9 by 0.3–0.5 ms and the peak RSS under load by
//! about 25 MB, for reasons not yet measured (lock holders preempted at idle priority and the
//! extra per-thread heaps are the candidates).

use std::io::{self, Write};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use tokio::task::JoinError;

/// Idle threads. Two, so the batches of two destinations flushing together both run idle.
const THREADS: usize = 2;

/// How often a caller waiting on an idle job checks whether delivery fell behind.
const CHECK_EVERY: Duration = Duration::from_millis(5);

/// The longest an idle job may take before it runs at normal priority anyway, for a host kept
/// busy by other processes while this one's queues stay short.
pub const BACKSTOP: Duration = Duration::from_millis(200);

type Job = Box<dyn FnOnce() + Send>;

/// Unset until [`start`]; `Err` says why the threads could not run at idle priority.
static IDLE: OnceLock<Result<SyncSender<Job>, String>> = OnceLock::new();

/// Idle threads waiting for a job: a job goes to them only while one is.
static FREE: AtomicUsize = AtomicUsize::new(0);

/// Jobs that were taken back to normal priority; operators read
/// `gatecast_delivery_taken_back_total`, the tests this.
static TAKEN_BACK: AtomicU64 = AtomicU64::new(0);

/// Starts the idle threads, once per process; later calls return the first answer. `Err`
/// says why the threads could not run at idle priority: batch work then stays on the
/// blocking pool, paced, as without this module.
pub fn start() -> Result<(), String> {
    IDLE.get_or_init(spawn_threads)
        .as_ref()
        .map(|_| ())
        .map_err(Clone::clone)
}

#[cfg(test)]
fn taken_back() -> u64 {
    TAKEN_BACK.load(Ordering::Relaxed)
}

/// Set on an idle run that was taken back: its result is no longer wanted, so it may stop
/// at the next convenient point and return anything.
#[derive(Clone, Default)]
pub(crate) struct Abandoned(Arc<AtomicBool>);

impl Abandoned {
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Runs `work` on an idle thread when they are started, one of them is free and no
/// destination is behind; on the blocking pool otherwise, or once delivery falls behind while
/// it waits. `work` must be pure: it may run twice. A run whose [`Abandoned`] is set may stop
/// early; its result is discarded.
pub(crate) async fn run<T, F>(work: F) -> Result<T, JoinError>
where
    F: Fn(&Abandoned) -> T + Send + Sync + 'static,
    T: Send + 'static,
{
    let kept = Abandoned::default();
    let to_idle = match IDLE.get() {
        Some(Ok(sender)) if !crate::deliver::pace::under_pressure() => sender,
        _ => return tokio::task::spawn_blocking(move || work(&kept)).await,
    };
    let work = Arc::new(work);
    let claimed = Arc::new(AtomicBool::new(false));
    let abandoned = Abandoned::default();
    let (tx, mut done) = tokio::sync::oneshot::channel();
    let job: Job = {
        let work = work.clone();
        let claimed = claimed.clone();
        let abandoned = abandoned.clone();
        Box::new(move || {
            if !claimed.swap(true, Ordering::AcqRel) {
                let _ = tx.send(work(&abandoned));
            }
        })
    };
    // Only to a thread that is free now: a job queued behind another would wait for nothing.
    if FREE.load(Ordering::Acquire) == 0 || to_idle.try_send(job).is_err() {
        return tokio::task::spawn_blocking(move || work(&kept)).await;
    }
    let since = Instant::now();
    let mut check = tokio::time::interval(CHECK_EVERY);
    loop {
        tokio::select! {
            biased;
            result = &mut done => match result {
                Ok(value) => return Ok(value),
                // The job panicked; running it where panics are reported says so.
                Err(_) => return tokio::task::spawn_blocking(move || work(&kept)).await,
            },
            _ = check.tick() => {
                if crate::deliver::pace::under_pressure() || since.elapsed() >= BACKSTOP {
                    break;
                }
            }
        }
    }
    TAKEN_BACK.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("gatecast_delivery_taken_back_total").increment(1);
    // Not started yet: it never will be. Started: told to stop, so the CPU it would still
    // take under load goes to the run that counts.
    claimed.store(true, Ordering::Release);
    abandoned.0.store(true, Ordering::Relaxed);
    tokio::task::spawn_blocking(move || work(&kept)).await
}

/// Runs a sink's blocking batch I/O (the file sink's append) on the blocking pool, never on
/// the idle threads: a write is not pure, so it must not run twice. `io` writes the batch through
/// the [`Paced`] it is given, so a large body offers the core between slices as its encoding
/// did (see [`crate::pace`]), and the sink itself knows nothing of pacing.
pub(crate) async fn blocking_io<T, F>(io: F) -> Result<T, JoinError>
where
    F: FnOnce(&Paced) -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(move || io(&Paced(()))).await
}

/// How batch I/O handed over by [`blocking_io`] writes a body: in slices, with a pacing
/// checkpoint before each.
pub(crate) struct Paced(());

impl Paced {
    /// Bytes written between two pacing checkpoints. A batch line is often a megabyte, and one
    /// `write` of it holds a core in the kernel for about a millisecond.
    pub(crate) const WRITE_SLICE: usize = 64 * 1024;

    /// Writes all of `body` to `out`.
    pub(crate) fn write_all(&self, out: &mut impl Write, body: &[u8]) -> io::Result<()> {
        body.chunks(Self::WRITE_SLICE).try_for_each(|piece| {
            crate::deliver::pace::checkpoint();
            out.write_all(piece)
        })
    }
}

fn spawn_threads() -> Result<SyncSender<Job>, String> {
    let (tx, rx) = sync_channel::<Job>(THREADS);
    let rx = Arc::new(Mutex::new(rx));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    for index in 0..THREADS {
        let rx = rx.clone();
        let ready = ready_tx.clone();
        std::thread::Builder::new()
            .name(format!("gatecast-idle-{index}"))
            .spawn(move || {
                let lowered = lower_this_thread();
                let ok = lowered.is_ok();
                let _ = ready.send(lowered);
                if ok {
                    serve(&rx);
                }
            })
            .map_err(|e| format!("cannot start an idle thread: {e}"))?;
    }
    drop(ready_tx);
    for _ in 0..THREADS {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("an idle thread ended before it started".to_owned()),
        }
    }
    Ok(tx)
}

/// Takes jobs until the process ends, counted in [`FREE`] while it waits for one.
fn serve(rx: &Mutex<Receiver<Job>>) {
    loop {
        FREE.fetch_add(1, Ordering::AcqRel);
        let job = {
            let rx = rx.lock().unwrap_or_else(PoisonError::into_inner);
            rx.recv()
        };
        FREE.fetch_sub(1, Ordering::AcqRel);
        let Ok(job) = job else { return };
        // A panicking job drops its result sender; the caller runs it again where the
        // panic is reported. The thread keeps serving.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
    }
}

fn lower_this_thread() -> Result<(), String> {
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
        ThreadPriority, ThreadSchedulePolicy,
    };
    set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
    )
    .map_err(|e| format!("cannot set SCHED_IDLE on a delivery thread: {e:?}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn policy_of_this_thread() -> thread_priority::ThreadSchedulePolicy {
        thread_priority::thread_schedule_policy().unwrap()
    }

    #[tokio::test]
    async fn jobs_run_on_an_idle_priority_thread() {
        start().unwrap();
        let idle = thread_priority::ThreadSchedulePolicy::Normal(
            thread_priority::NormalThreadSchedulePolicy::Idle,
        );
        // Right after start, or while another test's job holds both threads, a job runs at
        // normal priority at once; the idle threads must take one as soon as one is free.
        let mut seen = Vec::new();
        for _ in 0..100 {
            let (policy, name) = run(|_: &Abandoned| {
                (
                    policy_of_this_thread(),
                    std::thread::current().name().map(str::to_owned),
                )
            })
            .await
            .unwrap();
            if policy == idle {
                assert!(name.unwrap_or_default().starts_with("gatecast-idle-"));
                assert_eq!(start(), Ok(()), "a second start keeps the first threads");
                return;
            }
            seen.push(name);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("no job ran at idle priority; ran on {seen:?}");
    }

    #[tokio::test]
    async fn a_job_stuck_on_the_idle_thread_runs_again_at_normal_priority() {
        start().unwrap();
        let release = Arc::new(AtomicBool::new(false));
        let runs = Arc::new(AtomicUsize::new(0));
        let gave_up = Arc::new(AtomicBool::new(false));
        let finished = Arc::new(AtomicBool::new(false));
        let before = taken_back();
        let job = {
            let release = release.clone();
            let runs = runs.clone();
            let gave_up = gave_up.clone();
            let finished = finished.clone();
            move |abandoned: &Abandoned| {
                runs.fetch_add(1, Ordering::SeqCst);
                if std::thread::current()
                    .name()
                    .is_some_and(|n| n.starts_with("gatecast-idle-"))
                {
                    // A starved idle thread: it does not finish until it is abandoned (or the
                    // test gives up).
                    while !release.load(Ordering::SeqCst) && !abandoned.is_set() {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    gave_up.store(!abandoned.is_set(), Ordering::SeqCst);
                    finished.store(true, Ordering::SeqCst);
                    return "idle";
                }
                "normal"
            }
        };
        // Another test may hold both idle threads for a moment; the job then runs at normal
        // priority at once, which is not the case under test, so it is tried again.
        for _ in 0..50 {
            runs.store(0, Ordering::SeqCst);
            let started = Instant::now();
            let result = run(job.clone()).await.unwrap();
            if runs.load(Ordering::SeqCst) == 1 {
                assert_eq!(result, "normal");
                tokio::time::sleep(Duration::from_millis(2)).await;
                continue;
            }
            // The idle run is told to stop once it is taken back; the release is only there
            // so a broken build does not leave the thread spinning.
            for _ in 0..1000 {
                if finished.load(Ordering::SeqCst) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            release.store(true, Ordering::SeqCst);
            assert!(
                finished.load(Ordering::SeqCst),
                "the idle run never stopped"
            );
            assert!(
                !gave_up.load(Ordering::SeqCst),
                "the idle run was not abandoned"
            );
            assert_eq!(result, "normal");
            assert!(
                started.elapsed() >= BACKSTOP || crate::deliver::pace::under_pressure(),
                "taken back only at the backstop or under pressure"
            );
            assert!(started.elapsed() < BACKSTOP * 10);
            assert!(taken_back() > before);
            assert_eq!(runs.load(Ordering::SeqCst), 2, "ran idle, then again");
            return;
        }
        panic!("no idle thread was ever free");
    }

    #[tokio::test]
    async fn a_panicking_job_is_reported_and_the_idle_threads_keep_serving() {
        start().unwrap();
        let failed = run(|_: &Abandoned| -> u32 { panic!("boom") }).await;
        assert!(failed.is_err_and(|e| e.is_panic()));
        assert_eq!(run(|_: &Abandoned| 7).await.unwrap(), 7);
    }

    /// Records the size of every write, as a file would see them.
    #[derive(Default)]
    struct Writes(Vec<Vec<u8>>);

    impl Write for Writes {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.push(buf.to_vec());
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn blocking_io_writes_a_body_whole_in_slices_off_the_runtime_threads() {
        // Not a multiple of the slice, so the last piece is a short one.
        let body: Vec<u8> = (0..Paced::WRITE_SLICE * 3 + 17)
            .map(|i| (i % 251) as u8)
            .collect();
        let sent = body.clone();
        let (writes, on_blocking_pool) = blocking_io(move |paced| {
            let mut out = Writes::default();
            paced.write_all(&mut out, &sent).unwrap();
            // The blocking pool allows blocking calls; a runtime thread would panic here.
            let on_blocking_pool = std::panic::catch_unwind(|| {
                tokio::runtime::Handle::current().block_on(async {});
            })
            .is_ok();
            (out.0, on_blocking_pool)
        })
        .await
        .unwrap();
        assert!(on_blocking_pool);
        assert_eq!(writes.len(), 4);
        assert!(writes.iter().all(|w| w.len() <= Paced::WRITE_SLICE));
        assert_eq!(writes.concat(), body);
    }
}
