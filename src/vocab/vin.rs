//! The VIN check: 17 characters of the VIN alphabet with a valid check digit.
//!
//! Listing validation and certification both apply it: a listing whose VIN fails is refused
//! at the API, and a hand-off record whose VIN fails is never certified.

/// The check digit (9th character) a VIN must have: `Some('0'..='9' | 'X')` for 17
/// characters from the VIN alphabet (`0-9A-Z` without I, O, Q), `None` otherwise.
///
/// ISO 3779 / GB 16735: each character's value (digits as themselves; letters
/// A–H 1–8, J–N 1–5, P 7, R 9, S–Z 2–9) times its position's weight
/// (8 7 6 5 4 3 2 10 0 9 8 7 6 5 4 3 2), summed, modulo 11; a remainder of 10 is `X`.
/// The check position itself weighs 0, so whatever is there does not change the answer.
pub fn vin_check_digit(vin: &str) -> Option<char> {
    const WEIGHTS: [u32; 17] = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];
    let bytes = vin.as_bytes();
    if bytes.len() != WEIGHTS.len() {
        return None;
    }
    let mut sum = 0;
    for (&b, w) in bytes.iter().zip(WEIGHTS) {
        sum += vin_value(b)? * w;
    }
    Some(match sum % 11 {
        10 => 'X',
        // A remainder below 10 is one decimal digit.
        r => char::from_digit(r, 10)?,
    })
}

/// The transliteration value of a VIN character, `None` outside the alphabet.
fn vin_value(b: u8) -> Option<u32> {
    let v = match b {
        b'0'..=b'9' => b - b'0',
        b'A'..=b'H' => b - b'A' + 1,
        b'J'..=b'N' => b - b'J' + 1,
        b'P' => 7,
        b'R' => 9,
        b'S'..=b'Z' => b - b'S' + 2,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Checks a VIN: length, alphabet, check digit. The error says which rule failed.
pub fn check_vin(vin: &str) -> Result<(), String> {
    let n = vin.chars().count();
    if n != 17 {
        return Err(format!("must be 17 characters, not {n}"));
    }
    if let Some((i, ch)) = vin
        .chars()
        .enumerate()
        .find(|&(_, ch)| !ch.is_ascii() || vin_value(ch as u8).is_none())
    {
        return Err(format!(
            "character {} ({ch:?}) is not allowed: use digits and capital letters except I, O and Q",
            i + 1
        ));
    }
    match vin_check_digit(vin) {
        Some(d) if vin.as_bytes().get(8) == Some(&(d as u8)) => Ok(()),
        _ => Err("check digit (9th character) does not match the rest of the VIN".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vin_check_digits_of_real_vins() {
        // Published VINs with valid check digits (the Wikipedia example first), and the
        // all-ones VIN (sum 89, 89 mod 11 = 1).
        let valid = [
            "1M8GDM9AXKP042788",
            "11111111111111111",
            "1HGCM82633A004352",
            "1HGBH41JXMN109186",
            "JN1DA31D63T505967",
            "2NKWL00X16M149834",
            "5J6HYJ8V55L009357",
            "5YJ3E1EA7HF000337",
            "JHMCM56557C404453",
            "1XPTD40X6JD456115",
        ];
        for vin in valid {
            assert_eq!(check_vin(vin), Ok(()), "{vin}");
            assert_eq!(vin_check_digit(vin), vin.chars().nth(8), "{vin}");
        }
        assert_eq!(vin_check_digit("1M8GDM9AXKP042788"), Some('X'));
        // The same VIN with its check digit wrong.
        assert!(check_vin("1XPTD40X0JD456115").is_err());

        // Changing any one character (other than to a letter with the same value at a
        // position of weight 0) breaks the check.
        for vin in valid {
            for i in (0..17).filter(|&i| i != 8) {
                let mut b = vin.as_bytes().to_vec();
                // A digit that differs in value from the original character.
                let orig = vin_value(b[i]).unwrap();
                b[i] = b'0' + u8::try_from((orig + 1) % 10).unwrap();
                let changed = String::from_utf8(b).unwrap();
                assert!(
                    check_vin(&changed).is_err(),
                    "{vin} → {changed} still passes"
                );
            }
        }
    }

    #[test]
    fn vin_check_digit_is_none_outside_the_alphabet() {
        for bad in [
            "",
            "1M8GDM9AXKP04278",
            "1M8GDM9AXKP0427888",
            "1M8GDM9AXKP04278I",
            "1M8GDM9AXKP04278O",
            "1M8GDM9AXKP04278Q",
            "1m8gdm9axkp042788",
            "1M8GDM9AXKP04278-",
            "1M8GDM9AXKP0427é",
        ] {
            assert_eq!(vin_check_digit(bad), None, "{bad}");
            assert!(check_vin(bad).is_err(), "{bad}");
        }
        // Transliteration table spot checks: A=1, H=8, J=1, N=5, P=7, R=9, S=2, Z=9.
        for (c, v) in [
            (b'A', 1),
            (b'H', 8),
            (b'J', 1),
            (b'N', 5),
            (b'P', 7),
            (b'R', 9),
            (b'S', 2),
            (b'Z', 9),
        ] {
            assert_eq!(vin_value(c), Some(v), "{}", c as char);
        }
    }
}
