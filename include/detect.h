/* detect.h - content detectors over response text: email addresses, payment card numbers
 * (13-19 digits with space/dash separators, Luhn-valid), US SSNs (AAA-GG-SSSS outside the
 * invalid ranges), phone numbers (E.164 and NANP forms) and IBANs (mod-97). They are a second
 * line behind the SQL rewrite (an agent can always transform a value past a detector), run
 * over every JSON string of a body or an error message, and mask in place (same length). */
#ifndef SLUICE_DETECT_H
#define SLUICE_DETECT_H

#include <stddef.h>

/* Detector kinds (bits). */
enum detect_kind {
	DETECT_EMAIL = 1, DETECT_CARD = 2, DETECT_SSN = 4, DETECT_PHONE = 8, DETECT_IBAN = 16,
	DETECT_ALL = 31
};

/* What to do with a finding of a kind. */
enum detect_action { DETECT_REPORT, DETECT_MASK, DETECT_REFUSE };

/* Per-kind actions; kinds not in <enabled> are not looked for. */
struct detect_rules {
	unsigned enabled;               /* DETECT_* bits */
	enum detect_action action[5];   /* indexed by bit number: email, card, ssn, phone, iban */
};

/* Findings of one scan. */
struct detect_report {
	unsigned found;     /* DETECT_* bits seen */
	int count[5];       /* per kind */
	int refuse;         /* some finding's action is refuse */
};

/* Scan text[0..len) (plain text, e.g. one decoded string) for findings; with mask actions,
 * overwrite the finding in place: digits and letters become 'X' (separators and the email's
 * domain kept). Returns the number of findings. */
int detect_text(char *text, size_t len, const struct detect_rules *r, struct detect_report *rep);

/* Scan every string value (and key) of the JSON text json[0..len) the same way, in place;
 * escapes inside strings are left alone (an escaped character breaks a match). Returns the
 * number of findings, or -1 when the text is not JSON-shaped (an unterminated string). */
int detect_json(char *json, size_t len, const struct detect_rules *r, struct detect_report *rep);

/* Luhn checksum of the digits of s[0..n) (other bytes skipped): 1 when valid. */
int detect_luhn(const char *s, size_t n);

/* IBAN check (letters and digits of s[0..n), spaces skipped): 1 when mod-97 == 1. */
int detect_iban_ok(const char *s, size_t n);

#endif
