//! Event times from ISO-8601 text, as `events.parse_time_ms` computes them in Python:
//! `int(datetime.fromisoformat(text).timestamp() * 1000)`.
//!
//! Only one strict shape is read here, the one Genesys sends:
//! `YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|±HH:MM)`. Anything else (other ISO shapes that Python reads,
//! naive local times, invalid dates) is [`Unsure`]: the caller leaves the frame to the Python
//! path rather than guess. The arithmetic is Python's: the microseconds since the epoch divided
//! by 10^6 into a double (exact operands below 2^53, so the one rounding is the same), times
//! 1000, truncated toward zero.

/// The text is not in the shape read here; Python must decide.
#[derive(Debug)]
pub struct Unsure;

fn digits(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(bytes.iter().fold(0i64, |n, &b| n * 10 + (b - b'0') as i64))
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(year) => 29,
        _ => 28,
    }
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian; H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Epoch milliseconds of `text`, computed as Python does.
pub fn epoch_ms(text: &str) -> Result<i64, Unsure> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':'
    {
        return Err(Unsure);
    }
    let year = digits(&b[0..4]).ok_or(Unsure)?;
    let month = digits(&b[5..7]).ok_or(Unsure)?;
    let day = digits(&b[8..10]).ok_or(Unsure)?;
    let hour = digits(&b[11..13]).ok_or(Unsure)?;
    let minute = digits(&b[14..16]).ok_or(Unsure)?;
    let second = digits(&b[17..19]).ok_or(Unsure)?;
    if year < 1
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(Unsure);
    }
    let mut rest = &b[19..];
    let mut micros = 0i64;
    if rest.first() == Some(&b'.') {
        let count = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=6).contains(&count) {
            return Err(Unsure);
        }
        micros = digits(&rest[1..=count]).ok_or(Unsure)? * 10i64.pow(6 - count as u32);
        rest = &rest[1 + count..];
    }
    let offset_s = match rest {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = digits(&[*h1, *h2]).ok_or(Unsure)?;
            let minutes = digits(&[*m1, *m2]).ok_or(Unsure)?;
            if hours > 23 || minutes > 59 {
                return Err(Unsure);
            }
            let seconds = hours * 3600 + minutes * 60;
            if *sign == b'-' {
                -seconds
            } else {
                seconds
            }
        }
        _ => return Err(Unsure),
    };
    let seconds =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset_s;
    let total_us = seconds * 1_000_000 + micros;
    if total_us.unsigned_abs() >= 1 << 53 {
        return Err(Unsure); // beyond 2255: the double division would round twice
    }
    let timestamp = total_us as f64 / 1e6;
    Ok((timestamp * 1000.0) as i64)
}
