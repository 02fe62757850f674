//! Cron schedules (`cron = "0 3 * * *"`): parsed once when a spec is checked, and asked for the
//! next time after a given one. Expressions are read as cron reads them, in the machine's local
//! time: five fields, or six with seconds first (`*/5 * * * * *`: every five seconds).

use croner::Cron;
use croner::parser::{CronParser, Seconds};
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone)]
pub struct Schedule(Cron);

impl Schedule {
    pub fn parse(expression: &str) -> Result<Schedule, String> {
        let parser = CronParser::builder().seconds(Seconds::Optional).build();
        parser.parse(expression).map(Schedule).map_err(|e| format!("{expression:?} is not a cron expression: {e}"))
    }

    /// The first time of the schedule strictly after `after_ms` (unix ms); None when there is
    /// none (a date that never comes, such as 30 February).
    pub fn next_after(&self, after_ms: u64) -> Option<u64> {
        let local = chrono::DateTime::<chrono::Local>::from(SystemTime::UNIX_EPOCH + Duration::from_millis(after_ms));
        let next = SystemTime::from(self.0.find_next_occurrence(&local, false).ok()?);
        next.duration_since(SystemTime::UNIX_EPOCH).ok().map(|d| d.as_millis() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_and_six_fields() {
        let start = 1_800_000_000_250;
        let every_minute = Schedule::parse("* * * * *").unwrap();
        let next = every_minute.next_after(start).unwrap();
        assert!(next > start && next - start <= 60_000, "{}", next - start);
        assert_eq!(next % 60_000, 0, "on the minute");
        let every_second = Schedule::parse("* * * * * *").unwrap();
        assert_eq!(every_second.next_after(start), Some(1_800_000_001_000));
        let every_five = Schedule::parse("*/5 * * * * *").unwrap();
        let first = every_five.next_after(start).unwrap();
        assert_eq!(every_five.next_after(first), Some(first + 5000));
    }

    #[test]
    fn nonsense_is_refused_with_the_expression() {
        for bad in ["", "every day", "61 * * * *", "* * * * * * * *"] {
            let e = Schedule::parse(bad).unwrap_err();
            assert!(e.contains("not a cron expression"), "{bad}: {e}");
        }
    }
}
