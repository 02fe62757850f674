//! A cron expression as a systemd calendar event (`OnCalendar=`): `0 3 * * 1-5` is
//! `Mon,Tue,Wed,Thu,Fri *-*-* 03:00:00`. None for what systemd's calendar cannot say: cron's
//! extensions (L, W, #) and a schedule restricting both the day of the month and the weekday
//! (cron runs on either, systemd only on both).

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];

pub fn on_calendar(cron: &str) -> Option<String> {
    let fields: Vec<&str> = cron.split_whitespace().collect();
    let (sec, rest) = match fields.len() {
        5 => ("0", &fields[..]),
        6 => (fields[0], &fields[1..]),
        _ => return None,
    };
    let [min, hour, dom, mon, dow] = rest else { return None };
    let restricted = |f: &str| f != "*" && f != "?";
    if restricted(dom) && restricted(dow) {
        return None;
    }
    let days = weekdays(dow)?;
    let date = format!("*-{}-{}", field(mon, 1, 12, &MONTHS)?, field(dom, 1, 31, &[])?);
    let time = format!("{}:{}:{}", field(hour, 0, 23, &[])?, field(min, 0, 59, &[])?, field(sec, 0, 59, &[])?);
    Some(match days {
        Some(days) => format!("{days} {date} {time}"),
        None => format!("{date} {time}"),
    })
}

/// One number of a field: a number in range, or a name (`JAN`).
fn number(text: &str, lo: u32, hi: u32, names: &[&str]) -> Option<u32> {
    let n = match names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
        Some(i) => i as u32 + lo,
        None => text.parse().ok()?,
    };
    (lo..=hi).contains(&n).then_some(n)
}

/// Every value an item (`5`, `1-5`, `*/15`, `10-40/10`) stands for.
fn values(item: &str, lo: u32, hi: u32, names: &[&str]) -> Option<Vec<u32>> {
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => (range, step.parse::<u32>().ok().filter(|s| *s > 0)?),
        None => (item, 1),
    };
    let (from, to) = match range {
        "*" | "?" => (lo, hi),
        _ => match range.split_once('-') {
            Some((a, b)) => (number(a, lo, hi, names)?, number(b, lo, hi, names)?),
            // `5/10`: from 5 on.
            None if step > 1 => (number(range, lo, hi, names)?, hi),
            None => {
                let n = number(range, lo, hi, names)?;
                (n, n)
            }
        },
    };
    (from <= to).then(|| (from..=to).step_by(step as usize).collect())
}

/// A numeric field in systemd's syntax: `*`, or the values as a list.
fn field(text: &str, lo: u32, hi: u32, names: &[&str]) -> Option<String> {
    if text == "*" || text == "?" {
        return Some("*".into());
    }
    let mut all = Vec::new();
    for item in text.split(',') {
        all.extend(values(item, lo, hi, names)?);
    }
    all.sort_unstable();
    all.dedup();
    Some(all.iter().map(|n| format!("{n:02}")).collect::<Vec<_>>().join(","))
}

/// The weekdays of a cron day-of-week field (0 and 7 are Sunday), or None for every day.
fn weekdays(text: &str) -> Option<Option<String>> {
    if text == "*" || text == "?" {
        return Some(None);
    }
    let mut days = [false; 7];
    for item in text.split(',') {
        for n in values(item, 0, 7, &WEEKDAYS)? {
            days[n as usize % 7] = true;
        }
    }
    // Monday first, as systemd's week runs.
    let names: Vec<&str> = (1..=7).map(|i| i % 7).filter(|&d| days[d]).map(|d| WEEKDAYS[d]).collect();
    Some((names.len() < 7).then(|| names.join(",")))
}

#[cfg(test)]
mod tests {
    use super::on_calendar;

    #[test]
    fn cron_fields_become_calendar_fields() {
        let cases = [
            ("0 3 * * *", "*-*-* 03:00:00"),
            ("*/15 * * * *", "*-*-* *:00,15,30,45:00"),
            ("30 2 1 JAN,jul *", "*-01,07-01 02:30:00"),
            ("0 9 * * 1-5", "Mon,Tue,Wed,Thu,Fri *-*-* 09:00:00"),
            ("0 0 * * 0,7", "Sun *-*-* 00:00:00"),
            ("*/10 * * * * *", "*-*-* *:*:00,10,20,30,40,50"),
            ("0 0 */10 * *", "*-*-01,11,21,31 00:00:00"),
        ];
        for (cron, calendar) in cases {
            assert_eq!(on_calendar(cron).as_deref(), Some(calendar), "{cron}");
        }
        for untranslatable in ["0 0 1 * 1", "0 0 L * *", "0 0 * * 5#3", "0 0 * *"] {
            assert_eq!(on_calendar(untranslatable), None, "{untranslatable}");
        }
    }
}
