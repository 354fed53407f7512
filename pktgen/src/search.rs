//! RFC 2544 §26.1-style throughput search: the highest rate whose trial loses at most a given
//! fraction of frames, found by binary search between 0 and a maximum rate.

/// Search parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchConfig {
    /// Upper end of the search (a trial at this rate runs first).
    pub max_pps: u64,
    /// Highest acceptable loss, in percent of the frames sent (0 = RFC 2544's zero loss).
    pub loss_pct: f64,
    /// Stop when the bracket between the best passing and the lowest failing rate is at most
    /// this many packets per second.
    pub resolution_pps: u64,
    /// Hard cap on the number of trials.
    pub max_trials: u32,
}

/// One trial's result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trial {
    /// Offered rate.
    pub rate_pps: u64,
    /// Measured loss in percent.
    pub loss_pct: f64,
    /// Loss at or under the threshold.
    pub pass: bool,
}

/// The search's outcome: the best passing rate (if any trial passed) with what that trial
/// measured, and every trial in order.
#[derive(Debug, Clone)]
pub struct SearchResult<T> {
    /// Highest passing rate and its trial's report.
    pub best: Option<(u64, T)>,
    /// Every trial in the order run.
    pub trials: Vec<Trial>,
}

/// Runs the search. `trial(rate_pps)` runs one trial and returns the loss in percent and a
/// report kept for the best trial.
pub fn search<T, E>(
    cfg: &SearchConfig,
    mut trial: impl FnMut(u64) -> Result<(f64, T), E>,
) -> Result<SearchResult<T>, E> {
    let mut out = SearchResult {
        best: None,
        trials: Vec::new(),
    };
    let (mut lo, mut hi) = (0u64, cfg.max_pps);
    let mut rate = cfg.max_pps;
    while rate > 0 && (out.trials.len() as u32) < cfg.max_trials.max(1) {
        let (loss, report) = trial(rate)?;
        let pass = loss <= cfg.loss_pct;
        out.trials.push(Trial {
            rate_pps: rate,
            loss_pct: loss,
            pass,
        });
        if pass {
            lo = rate;
            out.best = Some((rate, report));
            if rate == cfg.max_pps {
                break;
            }
        } else {
            hi = rate;
        }
        if hi - lo <= cfg.resolution_pps.max(1) {
            break;
        }
        rate = lo + (hi - lo) / 2;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max: u64, res: u64) -> SearchConfig {
        SearchConfig {
            max_pps: max,
            loss_pct: 0.0,
            resolution_pps: res,
            max_trials: 100,
        }
    }

    /// A device that drops everything above `cap` pps.
    fn device(cap: u64) -> impl FnMut(u64) -> Result<(f64, u64), ()> {
        move |r| {
            Ok((
                if r > cap {
                    100.0 * (r - cap) as f64 / r as f64
                } else {
                    0.0
                },
                r,
            ))
        }
    }

    #[test]
    fn finds_the_capacity_within_the_resolution() {
        let r = search(&cfg(10_000_000, 10_000), device(3_333_333)).unwrap();
        let (best, rep) = r.best.unwrap();
        assert!(
            best <= 3_333_333 && 3_333_333 - best <= 10_000,
            "best {best}"
        );
        assert_eq!(rep, best);
        assert_eq!(r.trials[0].rate_pps, 10_000_000);
        assert!(!r.trials[0].pass);
        assert!(
            r.trials.len() <= 12,
            "log2(10M/10k) ~ 10 trials, got {}",
            r.trials.len()
        );
    }

    #[test]
    fn passing_at_the_maximum_stops_at_once() {
        let r = search(&cfg(1000, 1), device(5000)).unwrap();
        assert_eq!(r.trials.len(), 1);
        assert_eq!(r.best.map(|b| b.0), Some(1000));
    }

    #[test]
    fn nothing_passes_and_threshold_and_trial_cap_apply() {
        let r = search(&cfg(1000, 1), |_| Ok::<_, ()>((1.0, ()))).unwrap();
        assert!(r.best.is_none());
        assert!(r.trials.iter().all(|t| !t.pass));
        let c = SearchConfig {
            loss_pct: 1.0,
            ..cfg(1000, 1)
        };
        assert_eq!(
            search(&c, |_| Ok::<_, ()>((1.0, ())))
                .unwrap()
                .best
                .map(|b| b.0),
            Some(1000)
        );
        let c = SearchConfig {
            max_trials: 3,
            ..cfg(1_000_000, 1)
        };
        assert_eq!(search(&c, device(1)).unwrap().trials.len(), 3);
        assert_eq!(
            search(&c, |_| Err::<(f64, ()), _>("boom")).unwrap_err(),
            "boom"
        );
    }
}
