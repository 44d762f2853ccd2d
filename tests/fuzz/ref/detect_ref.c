/* detect_ref.c - the detectors as they were before the fast scan (byte at a time, every
 * string), kept as the reference detect_fuzz.c compares them with: what they find, mask and
 * refuse must not change. Included by the driver; names prefixed ref_. */
#include <ctype.h>
#include <string.h>

#include "detect.h"

#define REF_EMAIL_MAX 254

/* Bit number of kind k. */
static int ref_kbit(unsigned k)
{
	return __builtin_ctz(k);
}

static int ref_detect_luhn(const char *s, size_t n)
{
	int sum = 0, alt = 0, digits = 0;
	size_t i;

	for (i = n; i-- > 0;) {
		int d;

		if (!isdigit((unsigned char)s[i]))
			continue;
		d = s[i] - '0';
		if (alt && (d *= 2) > 9)
			d -= 9;
		sum += d;
		alt = !alt;
		digits++;
	}
	return digits && sum % 10 == 0;
}

static int ref_detect_iban_ok(const char *s, size_t n)
{
	char b[40];
	size_t i, k = 0;
	unsigned rem = 0;

	for (i = 0; i < n; i++)
		if (s[i] != ' ') {
			if (k >= sizeof(b))
				return 0;
			b[k++] = (char)toupper((unsigned char)s[i]);
		}
	if (k < 15 || k > 34 || !isupper((unsigned char)b[0]) || !isupper((unsigned char)b[1]) ||
	    !isdigit((unsigned char)b[2]) || !isdigit((unsigned char)b[3]))
		return 0;
	for (i = 0; i < k; i++) { /* rotate the first four to the end */
		char c = b[(i + 4) % k];

		if (isdigit((unsigned char)c))
			rem = (rem * 10 + (unsigned)(c - '0')) % 97;
		else if (isupper((unsigned char)c))
			rem = (rem * 100 + (unsigned)(c - 'A' + 10)) % 97;
		else
			return 0;
	}
	return rem == 1;
}

/* Is byte c a word character (a match must not continue one)? */
static int ref_wordc(int c)
{
	return isalnum(c) || c == '_';
}

/* Card at s[0..n): 13-19 digits, single space/dash separators; length or 0. */
static size_t ref_match_card(const char *s, size_t n)
{
	size_t i = 0, digits = 0, last = 0;

	while (i < n && digits < 19) {
		if (isdigit((unsigned char)s[i])) {
			digits++;
			last = ++i;
		} else if ((s[i] == ' ' || s[i] == '-') && i && isdigit((unsigned char)s[i - 1]) &&
			   i + 1 < n && isdigit((unsigned char)s[i + 1])) {
			i++;
		} else {
			break;
		}
	}
	if (digits < 13 || (last < n && isdigit((unsigned char)s[last])))
		return 0;
	return ref_detect_luhn(s, last) ? last : 0;
}

/* SSN AAA-GG-SSSS (area not 000, 666, 9xx; group not 00; serial not 0000); length or 0. */
static size_t ref_match_ssn(const char *s, size_t n)
{
	int i;

	if (n < 11)
		return 0;
	for (i = 0; i < 11; i++)
		if (i == 3 || i == 6 ? s[i] != '-' : !isdigit((unsigned char)s[i]))
			return 0;
	if (n > 11 && (isdigit((unsigned char)s[11]) || s[11] == '-'))
		return 0;
	if (!memcmp(s, "000", 3) || !memcmp(s, "666", 3) || s[0] == '9' || !memcmp(s + 4, "00", 2) ||
	    !memcmp(s + 7, "0000", 4))
		return 0;
	return 11;
}

/* Phone: +E.164 (+ and 8-15 digits, single space/dash separators) or NANP (NXX) NXX-XXXX,
 * NXX-NXX-XXXX, NXX.NXX.XXXX, optionally with +1/1 prefix; length or 0. */
static size_t ref_match_phone(const char *s, size_t n)
{
	size_t i = 0, digits = 0, last = 0;

	if (s[0] == '+') {
		i = 1;
		while (i < n && digits < 15) {
			if (isdigit((unsigned char)s[i])) {
				digits++;
				last = ++i;
			} else if ((s[i] == ' ' || s[i] == '-') && isdigit((unsigned char)s[i - 1]) &&
				   i + 1 < n && (isdigit((unsigned char)s[i + 1]) || s[i + 1] == '(')) {
				i++;
			} else if (s[i] == '(' || s[i] == ')') {
				i++;
			} else {
				break;
			}
		}
		if (digits < 8 || (last < n && isdigit((unsigned char)s[last])) || s[1] == '0')
			return 0;
		return last;
	}
	/* NANP: [(]NXX[)][ -.]NXX[-.]XXXX */
	{
		char d[10];
		int k = 0, paren = 0;

		i = 0;
		if (s[i] == '(')
			paren = 1, i++;
		for (; i < n && k < 3; i++, k++) {
			if (!isdigit((unsigned char)s[i]))
				return 0;
			d[k] = s[i];
		}
		if (paren && (i >= n || s[i++] != ')'))
			return 0;
		if (i < n && (s[i] == '-' || s[i] == '.' || s[i] == ' '))
			i++;
		else if (!paren)
			return 0;
		for (; i < n && k < 6; i++, k++) {
			if (!isdigit((unsigned char)s[i]))
				return 0;
			d[k] = s[i];
		}
		if (i >= n || (s[i] != '-' && s[i] != '.'))
			return 0;
		i++;
		for (; i < n && k < 10; i++, k++) {
			if (!isdigit((unsigned char)s[i]))
				return 0;
			d[k] = s[i];
		}
		if (k < 10 || (i < n && isdigit((unsigned char)s[i])) || d[0] < '2' || d[3] < '2')
			return 0;
		return i;
	}
}

/* Email at s[0..n) starting at a local-part byte; sets *at; length or 0. */
static size_t ref_match_email(const char *s, size_t n, size_t *at)
{
	size_t i = 0, dot = 0, lim = n < REF_EMAIL_MAX ? n : REF_EMAIL_MAX;
	int named = 0;

	while (i < lim && (isalnum((unsigned char)s[i]) || strchr("._%+-", s[i])) && s[i]) {
		if (isalnum((unsigned char)s[i]) && s[i] != 'X')
			named = 1;
		i++;
	}
	if (!i || i >= lim || s[i] != '@' || !named) /* masked: XXXXX@domain */
		return 0;
	*at = i++;
	while (i < lim && (isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '.')) {
		if (s[i] == '.' && i + 1 < lim && isalpha((unsigned char)s[i + 1]))
			dot = i;
		i++;
	}
	while (i > *at + 1 && s[i - 1] == '.')
		i--;
	return dot && dot > *at + 1 && dot + 2 < i + 1 ? i : 0;
}

/* Record a finding of kind k over s[0..len); mask it when asked. */
static void ref_found(char *s, size_t len, size_t keep_from, unsigned k,
		      const struct detect_rules *r, struct detect_report *rep)
{
	size_t i;
	enum detect_action a = r->action[ref_kbit(k)];

	rep->found |= k;
	rep->count[ref_kbit(k)]++;
	if (a == DETECT_REFUSE)
		rep->refuse = 1;
	if (a != DETECT_MASK)
		return;
	for (i = 0; i < len && i < keep_from; i++)
		if (isalnum((unsigned char)s[i]))
			s[i] = 'X';
}

static int ref_detect_text(char *s, size_t n, const struct detect_rules *r,
			   struct detect_report *rep)
{
	size_t i = 0;
	int total = 0;

	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		size_t m = 0, at;
		int prev_word = i && ref_wordc((unsigned char)s[i - 1]);

		if (!prev_word && isdigit(c)) {
			if ((r->enabled & DETECT_SSN) && (m = ref_match_ssn(s + i, n - i))) {
				ref_found(s + i, m, m, DETECT_SSN, r, rep);
			} else if ((r->enabled & DETECT_CARD) && (m = ref_match_card(s + i, n - i))) {
				ref_found(s + i, m, m - 4, DETECT_CARD, r, rep); /* last four kept */
			} else if ((r->enabled & DETECT_PHONE) && (m = ref_match_phone(s + i, n - i))) {
				ref_found(s + i, m, m, DETECT_PHONE, r, rep);
			}
		} else if (!prev_word && (c == '+' || c == '(') && (r->enabled & DETECT_PHONE)) {
			if ((m = ref_match_phone(s + i, n - i)))
				ref_found(s + i, m, m, DETECT_PHONE, r, rep);
		} else if (!prev_word && isupper(c) && (r->enabled & DETECT_IBAN) && i + 15 <= n &&
			   isupper((unsigned char)s[i + 1]) && isdigit((unsigned char)s[i + 2])) {
			size_t e = i;

			while (e < n && e - i < 42 && (isalnum((unsigned char)s[e]) || s[e] == ' '))
				e++;
			while (e > i && s[e - 1] == ' ')
				e--;
			/* longest prefix that checks out (IBANs may be followed by words) */
			for (; e >= i + 15; e--)
				if ((e == n || !isalnum((unsigned char)s[e])) && ref_detect_iban_ok(s + i, e - i)) {
					m = e - i;
					ref_found(s + i, m, m, DETECT_IBAN, r, rep);
					break;
				}
		}
		if (!m && (r->enabled & DETECT_EMAIL) && !prev_word && (isalnum(c)) &&
		    memchr(s + i, '@', n - i < REF_EMAIL_MAX ? n - i : REF_EMAIL_MAX) &&
		    (m = ref_match_email(s + i, n - i, &at)))
			ref_found(s + i, m, at, DETECT_EMAIL, r, rep);
		if (m) {
			total++;
			i += m;
		} else {
			i++;
		}
	}
	return total;
}

static int ref_detect_json(char *json, size_t len, const struct detect_rules *r,
			   struct detect_report *rep)
{
	char *p = json, *e = json + len;
	int total = 0;

	while ((p = memchr(p, '"', (size_t)(e - p)))) {
		char *a = ++p, *q;

		for (;;) {
			q = memchr(p, '"', (size_t)(e - p));
			if (!q)
				return -1;
			{
				char *b = q;

				while (b > a && b[-1] == '\\')
					b--;
				if (!((q - b) & 1))
					break;
			}
			p = q + 1;
		}
		total += ref_detect_text(a, (size_t)(q - a), r, rep);
		p = q + 1;
	}
	return total;
}
