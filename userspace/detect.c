/* detect.c - content detectors (see detect.h). One left-to-right pass over the text; at each
 * candidate start byte the detectors that can start there try to match a bounded span, so a
 * scan is linear in the text (each attempt reads at most ~40 bytes, emails at most 254).
 *
 * Most strings of a response hold no finding, and that scan is what costs, so a string is
 * only scanned when it could hold one. detect_json reads the JSON 64 bytes at a time as bit
 * masks (SSE2 compares): the strings from the quotes and backslashes, as jsonseg.c finds
 * them, and the candidates from a few byte classes (candidates(): '@'; '+' or '('; three
 * digits and a separator; 13 digits and single separators; two capitals and a digit), one of
 * which every finding has inside its string. detect_text, JSON under 64 bytes and JSON that
 * is not JSON-shaped count each string instead (possible(): an email needs '@', a phone 8
 * digits, an SSN 9, a card 13, an IBAN 15 bytes, 2 capitals and 2 digits). Either way a
 * string that may hold a finding is scanned whole, as before, so the findings are the same:
 * tests/fuzz/detect_fuzz.c holds the two against the byte-at-a-time detectors. */
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "detect.h"
#include "jsonbits.h"

#define EMAIL_MAX 254

/* Byte classes (the C locale's, which is the daemon's). */
#define K_DIGIT 1
#define K_UPPER 2
#define K_LOWER 4
#define K_ALNUM (K_DIGIT | K_UPPER | K_LOWER)
#define K_WORD 8    /* a match must not continue a word: alnum or '_' */
#define K_LOCAL 16  /* an email's local part: alnum and "._%+-" */
#define K_DOMAIN 32 /* an email's domain: alnum, '-' and '.' */
#define K_START 64  /* may start a finding: alnum, '+', '(' */

#define K_ALNUM_AS(k) (K_WORD | K_LOCAL | K_DOMAIN | K_START | (k)) /* a letter or digit */

static const unsigned char cls[256] = {
	['0' ... '9'] = K_ALNUM_AS(K_DIGIT),
	['A' ... 'Z'] = K_ALNUM_AS(K_UPPER),
	['a' ... 'z'] = K_ALNUM_AS(K_LOWER),
	['_'] = K_WORD | K_LOCAL,
	['.'] = K_LOCAL | K_DOMAIN, ['-'] = K_LOCAL | K_DOMAIN, ['%'] = K_LOCAL,
	['+'] = K_LOCAL | K_START, ['('] = K_START,
};

static inline int is_digit(unsigned char c)
{
	return (unsigned char)(c - '0') < 10;
}

static inline int is_upper(unsigned char c)
{
	return (unsigned char)(c - 'A') < 26;
}

static inline int is_alnum(unsigned char c)
{
	return cls[c] & K_ALNUM;
}

/* Bit number of kind k. */
static int kbit(unsigned k)
{
	return __builtin_ctz(k);
}

int detect_luhn(const char *s, size_t n)
{
	int sum = 0, alt = 0, digits = 0;
	size_t i;

	for (i = n; i-- > 0;) {
		int d;

		if (!is_digit((unsigned char)s[i]))
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

int detect_iban_ok(const char *s, size_t n)
{
	char b[40];
	size_t i, k = 0;
	unsigned rem = 0;

	for (i = 0; i < n; i++)
		if (s[i] != ' ') {
			if (k >= sizeof(b))
				return 0;
			b[k++] = (char)(cls[(unsigned char)s[i]] & K_LOWER ? s[i] - 'a' + 'A' : s[i]);
		}
	if (k < 15 || k > 34 || !is_upper((unsigned char)b[0]) || !is_upper((unsigned char)b[1]) ||
	    !is_digit((unsigned char)b[2]) || !is_digit((unsigned char)b[3]))
		return 0;
	for (i = 0; i < k; i++) { /* rotate the first four to the end */
		char c = b[(i + 4) % k];

		if (is_digit((unsigned char)c))
			rem = (rem * 10 + (unsigned)(c - '0')) % 97;
		else if (is_upper((unsigned char)c))
			rem = (rem * 100 + (unsigned)(c - 'A' + 10)) % 97;
		else
			return 0;
	}
	return rem == 1;
}

/* Card at s[0..n): 13-19 digits, single space/dash separators; length or 0. */
static size_t match_card(const char *s, size_t n)
{
	size_t i = 0, digits = 0, last = 0;

	while (i < n && digits < 19) {
		if (is_digit((unsigned char)s[i])) {
			digits++;
			last = ++i;
		} else if ((s[i] == ' ' || s[i] == '-') && i && is_digit((unsigned char)s[i - 1]) &&
			   i + 1 < n && is_digit((unsigned char)s[i + 1])) {
			i++;
		} else {
			break;
		}
	}
	if (digits < 13 || (last < n && is_digit((unsigned char)s[last])))
		return 0;
	return detect_luhn(s, last) ? last : 0;
}

/* SSN AAA-GG-SSSS (area not 000, 666, 9xx; group not 00; serial not 0000); length or 0. */
static size_t match_ssn(const char *s, size_t n)
{
	int i;

	if (n < 11)
		return 0;
	for (i = 0; i < 11; i++)
		if (i == 3 || i == 6 ? s[i] != '-' : !is_digit((unsigned char)s[i]))
			return 0;
	if (n > 11 && (is_digit((unsigned char)s[11]) || s[11] == '-'))
		return 0;
	if (!memcmp(s, "000", 3) || !memcmp(s, "666", 3) || s[0] == '9' || !memcmp(s + 4, "00", 2) ||
	    !memcmp(s + 7, "0000", 4))
		return 0;
	return 11;
}

/* Phone: +E.164 (+ and 8-15 digits, single space/dash separators) or NANP (NXX) NXX-XXXX,
 * NXX-NXX-XXXX, NXX.NXX.XXXX, optionally with +1/1 prefix; length or 0. */
static size_t match_phone(const char *s, size_t n)
{
	size_t i = 0, digits = 0, last = 0;

	if (s[0] == '+') {
		i = 1;
		while (i < n && digits < 15) {
			if (is_digit((unsigned char)s[i])) {
				digits++;
				last = ++i;
			} else if ((s[i] == ' ' || s[i] == '-') && is_digit((unsigned char)s[i - 1]) &&
				   i + 1 < n && (is_digit((unsigned char)s[i + 1]) || s[i + 1] == '(')) {
				i++;
			} else if (s[i] == '(' || s[i] == ')') {
				i++;
			} else {
				break;
			}
		}
		if (digits < 8 || (last < n && is_digit((unsigned char)s[last])) || s[1] == '0')
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
			if (!is_digit((unsigned char)s[i]))
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
			if (!is_digit((unsigned char)s[i]))
				return 0;
			d[k] = s[i];
		}
		if (i >= n || (s[i] != '-' && s[i] != '.'))
			return 0;
		i++;
		for (; i < n && k < 10; i++, k++) {
			if (!is_digit((unsigned char)s[i]))
				return 0;
			d[k] = s[i];
		}
		if (k < 10 || (i < n && is_digit((unsigned char)s[i])) || d[0] < '2' || d[3] < '2')
			return 0;
		return i;
	}
}

/* Email at s[0..n) starting at a local-part byte; sets *at; length or 0. A local part whose
 * letters and digits are all 'X' is a masked email (the masker's "email" and this
 * detector's own mask write that), not a finding: it names no one. */
static size_t match_email(const char *s, size_t n, size_t *at)
{
	size_t i = 0, dot = 0, lim = n < EMAIL_MAX ? n : EMAIL_MAX;
	int named = 0;

	while (i < lim && cls[(unsigned char)s[i]] & K_LOCAL) {
		named |= s[i] != 'X' && is_alnum((unsigned char)s[i]);
		i++;
	}
	if (!i || i >= lim || s[i] != '@' || !named)
		return 0;
	*at = i++;
	while (i < lim && cls[(unsigned char)s[i]] & K_DOMAIN) {
		if (s[i] == '.' && i + 1 < lim && cls[(unsigned char)s[i + 1]] & (K_UPPER | K_LOWER))
			dot = i;
		i++;
	}
	while (i > *at + 1 && s[i - 1] == '.')
		i--;
	return dot && dot > *at + 1 && dot + 2 < i + 1 ? i : 0;
}

/* Record a finding of kind k over s[0..len); mask it when asked. */
static void found(char *s, size_t len, size_t keep_from, unsigned k, const struct detect_rules *r,
		  struct detect_report *rep)
{
	size_t i;
	enum detect_action a = r->action[kbit(k)];

	rep->found |= k;
	rep->count[kbit(k)]++;
	if (a == DETECT_REFUSE)
		rep->refuse = 1;
	if (a != DETECT_MASK)
		return;
	for (i = 0; i < len && i < keep_from; i++)
		if (is_alnum((unsigned char)s[i]))
			s[i] = 'X';
}

/* What a string holds, as far as the detectors care. */
struct counts {
	size_t digits, upper;
	int at;
};

/* The kinds of <enabled> a text of <n> bytes with counts <c> can hold a finding of. */
static unsigned possible(unsigned enabled, size_t n, const struct counts *c)
{
	unsigned k = 0;

	if (c->at)
		k |= DETECT_EMAIL;
	if (c->digits >= 8)
		k |= DETECT_PHONE;
	if (c->digits >= 9)
		k |= DETECT_SSN;
	if (c->digits >= 13)
		k |= DETECT_CARD;
	if (n >= 15 && c->digits >= 2 && c->upper >= 2)
		k |= DETECT_IBAN;
	return k & enabled;
}

/* Count one byte. */
static inline void count_byte(struct counts *c, unsigned char b)
{
	c->digits += is_digit(b);
	c->upper += is_upper(b);
	c->at |= b == '@';
}

/* The scan proper, for the kinds <k> only. */
static int scan_text(char *s, size_t n, unsigned k, const struct detect_rules *r,
		     struct detect_report *rep)
{
	size_t i = 0, next_at = 0; /* the first '@' at or after next_at's last search, or n */
	int total = 0, prev_word = 0, at_known = 0;

	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		size_t m = 0, at;

		if (prev_word || !(cls[c] & K_START)) { /* nothing starts here */
			prev_word = cls[c] & K_WORD;
			i++;
			continue;
		}
		if (is_digit(c)) {
			if ((k & DETECT_SSN) && (m = match_ssn(s + i, n - i))) {
				found(s + i, m, m, DETECT_SSN, r, rep);
			} else if ((k & DETECT_CARD) && (m = match_card(s + i, n - i))) {
				found(s + i, m, m - 4, DETECT_CARD, r, rep); /* last four kept */
			} else if ((k & DETECT_PHONE) && (m = match_phone(s + i, n - i))) {
				found(s + i, m, m, DETECT_PHONE, r, rep);
			}
		} else if (c == '+' || c == '(') {
			if ((k & DETECT_PHONE) && (m = match_phone(s + i, n - i)))
				found(s + i, m, m, DETECT_PHONE, r, rep);
		} else if (is_upper(c) && (k & DETECT_IBAN) && i + 15 <= n &&
			   is_upper((unsigned char)s[i + 1]) && is_digit((unsigned char)s[i + 2])) {
			size_t e = i;

			while (e < n && e - i < 42 && (is_alnum((unsigned char)s[e]) || s[e] == ' '))
				e++;
			while (e > i && s[e - 1] == ' ')
				e--;
			/* longest prefix that checks out (IBANs may be followed by words) */
			for (; e >= i + 15; e--)
				if ((e == n || !is_alnum((unsigned char)s[e])) &&
				    detect_iban_ok(s + i, e - i)) {
					m = e - i;
					found(s + i, m, m, DETECT_IBAN, r, rep);
					break;
				}
		}
		if (!m && (k & DETECT_EMAIL) && is_alnum(c)) {
			if (!at_known || next_at < i) { /* the searches never overlap */
				for (next_at = i; next_at < n && s[next_at] != '@'; next_at++)
					;
				at_known = 1;
			}
			if (next_at - i < (n - i < EMAIL_MAX ? n - i : EMAIL_MAX) &&
			    (m = match_email(s + i, n - i, &at)))
				found(s + i, m, at, DETECT_EMAIL, r, rep);
		}
		if (m) {
			total++;
			i += m;
			prev_word = cls[(unsigned char)s[i - 1]] & K_WORD;
		} else {
			prev_word = cls[c] & K_WORD;
			i++;
		}
	}
	return total;
}

int detect_text(char *s, size_t n, const struct detect_rules *r, struct detect_report *rep)
{
	struct counts c = { 0, 0, 0 };
	unsigned k;
	size_t i;

	for (i = 0; i < n; i++)
		count_byte(&c, (unsigned char)s[i]);
	k = possible(r->enabled, n, &c);
	return k ? scan_text(s, n, k, r, rep) : 0;
}

/* The closing quote of the string whose bytes start at <p> (a backslash escapes the byte
 * after it), or NULL when it has none before <e>; *c counts the bytes on the way. */
static char *string_end(char *p, const char *e, struct counts *c)
{
	for (;;) {
		while (p < e && *p != '"' && *p != '\\')
			count_byte(c, (unsigned char)*p++);
		if (p >= e)
			return NULL;
		if (*p == '"')
			return p;
		if (e - p < 2) /* a backslash at the end */
			return NULL;
		count_byte(c, (unsigned char)p[1]); /* the escaped byte is text to the detectors */
		p += 2;
	}
}

/* The strings that start before <lim>, one at a time from *pp (outside a string), each
 * counted first (see possible()); *pp moves past the last one, or to the next opening quote,
 * or to <e>. Returns the findings, or -1 at a string with no end. */
static int strings_upto(char **pp, const char *lim, char *e, const struct detect_rules *r,
			struct detect_report *rep)
{
	char *p = *pp, *o, *q;
	int total = 0;

	while (p < lim) {
		struct counts c = { 0, 0, 0 };
		unsigned k;

		for (o = p; o < e && *o != '"'; o++) /* short: most of what comes here is glue */
			;
		if (o == e) {
			p = e;
			break;
		}
		if (o >= lim) {
			p = o;
			break;
		}
		if (!(q = string_end(o + 1, e, &c)))
			return -1;
		if ((k = possible(r->enabled, (size_t)(q - o - 1), &c)))
			total += scan_text(o + 1, (size_t)(q - o - 1), k, r, rep);
		p = q + 1;
	}
	*pp = p;
	return total;
}

/* 64 bytes of JSON as bit masks (bit i: byte i). */
struct dblock {
	uint64_t quote, bslash, special; /* '"', '\\', and '@' '+' '(' */
	uint64_t digit, upper, sep;      /* [0-9], [A-Z], and ' ' to '.' (takes in '-' '.' ' ') */
};

#if defined(__SSE2__) && !defined(DETECT_PORTABLE)
/* The bytes of <v> in [lo, lo + n), as a vector (a signed compare after moving lo to -128). */
static inline __m128i in_range(__m128i v, int lo, int n)
{
	return _mm_cmplt_epi8(_mm_add_epi8(v, _mm_set1_epi8((char)(-128 - lo))),
			      _mm_set1_epi8((char)(-128 + n)));
}

#define MOVEMASK(x) ((uint64_t)(unsigned)_mm_movemask_epi8(x))
#define EQ(v, c) _mm_cmpeq_epi8(v, _mm_set1_epi8(c))
#endif

/* Classify the 16 bytes at <p> into bits <at>..<at> + 15 of *b (which start cleared). */
static inline void dchunk(const char *p, struct dblock *b, unsigned at)
{
#if defined(__SSE2__) && !defined(DETECT_PORTABLE)
	__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);

	b->quote |= MOVEMASK(EQ(v, '"')) << at;
	b->bslash |= MOVEMASK(EQ(v, '\\')) << at;
	b->special |= MOVEMASK(_mm_or_si128(_mm_or_si128(EQ(v, '@'), EQ(v, '+')), EQ(v, '('))) << at;
	b->digit |= MOVEMASK(in_range(v, '0', 10)) << at;
	b->upper |= MOVEMASK(in_range(v, 'A', 26)) << at;
	b->sep |= MOVEMASK(in_range(v, ' ', 15)) << at;
#else
	unsigned i;

	for (i = 0; i < 16; i++) {
		unsigned char c = (unsigned char)p[i];
		uint64_t bit = 1ull << (at + i);

		b->quote |= c == '"' ? bit : 0;
		b->bslash |= c == '\\' ? bit : 0;
		b->special |= c == '@' || c == '+' || c == '(' ? bit : 0;
		b->digit |= is_digit(c) ? bit : 0;
		b->upper |= is_upper(c) ? bit : 0;
		b->sep |= c >= ' ' && c <= '.' ? bit : 0;
	}
#endif
}

/* Classify the 64 bytes at <p> (all readable). */
static inline void dclassify(const char *p, struct dblock *b)
{
	memset(b, 0, sizeof(*b));
	dchunk(p, b, 0);
	dchunk(p + 16, b, 16);
	dchunk(p + 32, b, 32);
	dchunk(p + 48, b, 48);
}

/* Classify the last <n> bytes (1..63) before <e>, 16 at a time (e - 64 is readable), as a
 * block whose bytes past them are zeros. */
static inline void dclassify_tail(const char *e, unsigned n, struct dblock *b)
{
	unsigned c = (n + 15) / 16, j, k = 16 * c - n;

	memset(b, 0, sizeof(*b));
	for (j = 0; j < c; j++)
		dchunk(e - 16 * (c - j), b, 16 * j);
	if (k) { /* byte k of the chunks is the first of the n */
		b->quote >>= k;
		b->bslash >>= k;
		b->special >>= k;
		b->digit >>= k;
		b->upper >>= k;
		b->sep >>= k;
	}
}

/* What candidates() keeps of a block for the next one: the masks it looks back into. */
struct lookback {
	uint64_t digit, dstart, upper, y, y2, y4, y8;
};

/* <x> moved up <k> bits, the bits of the block before (<px>) coming in below. */
#define UP(x, px, k) ((x) << (k) | (px) >> (64 - (k)))

/* Where a finding of a kind of <enabled> may be in a block, from the bytes alone: a superset,
 * flagged on the last byte of what each finding needs, so it never misses one (a finding
 * lies inside one string, and so do the bytes it needs): '@' (email), '+' or '(' (phone);
 * three digits after a byte that is not one, and a separator (SSN, NANP phone); 13 bytes that
 * are digits or a separator after one, from a digit after a byte that is not one (card); two
 * capitals, after a byte that is neither a capital nor a digit, and a digit (IBAN). <lb>
 * holds the previous block's masks, and takes this one's. A matcher that comes to accept
 * more must keep each finding holding one of these (and within possible()'s counts), or
 * findings will be skipped; change tests/fuzz/ref/detect_ref.c with it, and fuzz. */
static inline uint64_t candidates(const struct dblock *b, unsigned enabled, struct lookback *lb)
{
	uint64_t d = b->digit, u = b->upper;
	uint64_t ds = d & ~UP(d, lb->digit, 1); /* digits that start a run of them */
	uint64_t y = d | (b->sep & UP(d, lb->digit, 1)), y2, y4, y8, f = 0;

	if (enabled & (DETECT_EMAIL | DETECT_PHONE))
		f |= b->special;
	if (enabled & (DETECT_SSN | DETECT_PHONE))
		f |= UP(ds, lb->dstart, 3) & UP(d, lb->digit, 2) & UP(d, lb->digit, 1) & b->sep;
	y2 = y & UP(y, lb->y, 1);      /* y here and 1 before */
	y4 = y2 & UP(y2, lb->y2, 2);   /* ... 3 before */
	y8 = y4 & UP(y4, lb->y4, 4);   /* ... 7 before */
	if (enabled & DETECT_CARD)
		f |= y8 & UP(y8, lb->y8, 5) & UP(ds, lb->dstart, 12);
	if (enabled & DETECT_IBAN)
		f |= d & UP(u, lb->upper, 1) & UP(u, lb->upper, 2) &
		     ~(UP(u, lb->upper, 3) | UP(d, lb->digit, 3));
	*lb = (struct lookback){ d, ds, u, y, y2, y4, y8 };
	return f;
}

/* Scan the string that holds the candidate at <c> and started at <a>: all of it, as
 * detect_text would. Returns the findings and sets *end to its closing quote, or -1. */
static int scan_string(char *a, char *c, const char *e, const struct detect_rules *r,
		       struct detect_report *rep, char **end)
{
	struct counts n = { 0, 0, 0 };

	if (!(*end = string_end(c, e, &n)))
		return -1;
	return scan_text(a, (size_t)(*end - a), r->enabled, r, rep);
}

/* 64 bytes at a time: the strings from the quotes and backslashes as in jsonseg.c, the
 * candidates from the bytes (candidates()), and only a string with a candidate in it is
 * scanned, whole, once its closing quote is seen. A block with a backslash outside any
 * string (not JSON) goes one string at a time instead. */
int detect_json(char *json, size_t len, const struct detect_rules *r, struct detect_report *rep)
{
	char *p = json, *e = json + len, *a = NULL; /* a: where the open string's bytes start */
	int total = 0, in_str = 0, carry = 0, pending = 0, n; /* pending: a has a candidate */
	struct lookback lb = { 0, 0, 0, 0, 0, 0, 0 };

	if (len < 64) /* too short for a block: one string at a time */
		return strings_upto(&p, e, e, r, rep);

	while (p < e) {
		struct dblock b;
		uint64_t esc, instr, open, close, f;
		int was_esc = carry;
		char *q;

		if (e - p < 64) { /* the last bytes */
			dclassify_tail(e, (unsigned)(e - p), &b);
		} else {
			dclassify(p, &b);
		}
		esc = escaped_bytes(b.bslash, &carry);
		instr = prefix_xor(b.quote & ~esc) ^ (in_str ? ~0ull : 0);
		if (b.bslash & ~instr) {
			char *lim = e - p > 64 ? p + 64 : e;

			if (in_str) { /* finish the open string first */
				if ((n = scan_string(a, p + was_esc, e, r, rep, &q)) < 0)
					return -1;
				total += n;
				p = q + 1;
			}
			if ((n = strings_upto(&p, lim, e, r, rep)) < 0)
				return -1;
			total += n;
			in_str = carry = pending = 0;
			memset(&lb, 0, sizeof(lb)); /* p is at a string's edge: nothing spans it */
			continue;
		}
		open = b.quote & ~esc & instr; /* not an escaped one */
		close = b.quote & ~instr;
		f = candidates(&b, r->enabled, &lb) & instr & ~b.quote;
		if (pending) { /* the string it is in began in an earlier block */
			if (!close) {
				f = 0;
			} else {
				q = p + __builtin_ctzll(close);
				total += scan_text(a, (size_t)(q - a), r->enabled, r, rep);
				f &= ~((2ull << (q - p)) - 1);
				pending = 0;
			}
		}
		while (f) {
			unsigned i = (unsigned)__builtin_ctzll(f);
			uint64_t upto = (2ull << i) - 1, before = open & upto, after = close & ~upto;
			char *s = before ? p + 64 - __builtin_clzll(before) : a;

			if (!after) { /* it goes on past this block */
				pending = 1;
				break;
			}
			q = p + __builtin_ctzll(after);
			total += scan_text(s, (size_t)(q - s), r->enabled, r, rep);
			f &= ~((2ull << (q - p)) - 1);
		}
		if (e - p <= 64) /* the last block: a string left open is not JSON */
			return instr >> (e - p - 1) & 1 ? -1 : total;
		if (instr >> 63 && open)
			a = p + 64 - __builtin_clzll(open);
		in_str = (int)(instr >> 63);
		p += 64;
	}
	return in_str ? -1 : total;
}
