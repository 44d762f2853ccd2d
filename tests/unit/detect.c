/* Description: content detectors: true positives of each kind (email, Luhn-valid cards with
 * separators, SSNs, E.164 and NANP phones, IBANs) and their negatives (Luhn and mod-97
 * failures, invalid SSN ranges, digits inside words), in-place masking in text and JSON, the
 * refuse action, and a throughput note. */
#include <time.h>

#include "detect.h"
#include "tap.h"

static const struct detect_rules MASK_ALL = {
	DETECT_ALL, { DETECT_MASK, DETECT_MASK, DETECT_MASK, DETECT_MASK, DETECT_MASK }
};

/* Run detect_text on a copy of <in>; returns the masked text and sets *found. */
static const char *scan(const char *in, unsigned *found)
{
	static char buf[1024];
	struct detect_report rep;

	memset(&rep, 0, sizeof(rep));
	snprintf(buf, sizeof(buf), "%s", in);
	detect_text(buf, strlen(buf), &MASK_ALL, &rep);
	*found = rep.found;
	return buf;
}

int main(void)
{
	static const struct {
		const char *in, *out;
		unsigned kind;
	} c[] = {
		{ "mail alice.smith@example.com now", "mail XXXXX.XXXXX@example.com now", DETECT_EMAIL },
		{ "card 4111 1111 1111 1111.", "card XXXX XXXX XXXX 1111.", DETECT_CARD },
		{ "card 4111-1111-1111-1111", "card XXXX-XXXX-XXXX-1111", DETECT_CARD },
		{ "card 4111111111111112 (bad Luhn)", "card 4111111111111112 (bad Luhn)", 0 },
		{ "ssn 123-45-6789", "ssn XXX-XX-XXXX", DETECT_SSN },
		{ "ssn 000-45-6789 666-45-6789 900-45-6789 123-00-6789 123-45-0000",
		  "ssn 000-45-6789 666-45-6789 900-45-6789 123-00-6789 123-45-0000", 0 },
		{ "call +1-555-0100 or +442071838750", "call +X-XXX-XXXX or +XXXXXXXXXXXX", DETECT_PHONE },
		{ "call (415) 555-2671 / 415-555-2671", "call (XXX) XXX-XXXX / XXX-XXX-XXXX",
		  DETECT_PHONE },
		{ "iban GB82 WEST 1234 5698 7654 32 ok", "iban XXXX XXXX XXXX XXXX XXXX XX ok",
		  DETECT_IBAN },
		{ "iban GB82WEST12345698765433", "iban GB82WEST12345698765433", 0 },
		{ "order A123-45-6789x and id 12345", "order A123-45-6789x and id 12345", 0 },
		{ "version 1.2.3 at 2024-01-02", "version 1.2.3 at 2024-01-02", 0 },
		{ "not@mail and a@b", "not@mail and a@b", 0 },
		{ "to first_last@example.com", "to XXXXX_XXXX@example.com", DETECT_EMAIL },
		/* masked already (the masker's "email", or this detector's own mask): no finding,
		 * so a policy that refuses emails does not refuse its own masked column */
		{ "from XXXXX@example.com", "from XXXXX@example.com", 0 },
		{ "mail XXXXX.XXXXX@example.com now", "mail XXXXX.XXXXX@example.com now", 0 },
		{ "mail aXXXX@example.com", "mail XXXXX@example.com", DETECT_EMAIL },
	};
	size_t i;
	unsigned f;
	char json[] = "{\"rows\":[{\"f\":[{\"v\":\"123-45-6789\"},{\"v\":\"x\\\"y 4111111111111111\"}]}]}";
	struct detect_report rep;
	struct detect_rules refuse = { DETECT_SSN, { 0, 0, DETECT_REFUSE, 0, 0 } };

	ok(detect_luhn("79927398713", 11), "Luhn: valid");
	ok(!detect_luhn("79927398710", 11), "Luhn: invalid");
	ok(detect_iban_ok("DE89 3704 0044 0532 0130 00", 27), "IBAN mod-97 valid");
	ok(!detect_iban_ok("DE89 3704 0044 0532 0130 01", 27), "IBAN mod-97 invalid");
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		is_str(scan(c[i].in, &f), c[i].out, "masked: %s", c[i].in);
		is_int(f, c[i].kind, "kinds: %s", c[i].in);
	}
	memset(&rep, 0, sizeof(rep));
	is_int(detect_json(json, strlen(json), &MASK_ALL, &rep), 2, "JSON: two findings");
	is_str(json, "{\"rows\":[{\"f\":[{\"v\":\"XXX-XX-XXXX\"},{\"v\":\"x\\\"y XXXXXXXXXXXX1111\"}]}]}",
	       "JSON masked in place, escapes kept");
	memset(&rep, 0, sizeof(rep));
	snprintf(json, sizeof(json), "{\"e\":\"bad 123-45-6789\"}");
	detect_json(json, strlen(json), &refuse, &rep);
	ok(rep.refuse && !strcmp(json, "{\"e\":\"bad 123-45-6789\"}"), "refuse: flagged, not changed");
	memset(&rep, 0, sizeof(rep));
	is_int(detect_json((char[]){ "{\"a\":\"x" }, 7, &MASK_ALL, &rep), -1, "unterminated: -1");
	{
		/* findings at every offset of long strings: as detect_text finds them in each */
		static const char *const body[] = {
			"mail alice.smith@example.com now", "card 4111-1111-1111-1111.",
			"ssn 123-45-6789", "call +44 20 7183 8750", "call (415) 555-2671",
			"call 415.555.2671", "iban GB82 WEST 1234 5698 7654 32 ok",
			"iban NL91 ABNA 0417 1643 00",
			"ssn 123-45-6789, card 4111 1111 1111 1111 at +1-555-0100",
			"a\\\" \\\\ bob_b@example.org \\\"GB82 WEST 1234 5698 7654 32\\\\",
		};
		char doc[512], want[512], text[256];
		int k, good = 1, ntext, njson;
		size_t b;

		for (b = 0; b < sizeof(body) / sizeof(body[0]); b++)
			for (k = 0; k < 150 && good; k++) {
				struct detect_report r2;

				snprintf(text, sizeof(text), "%*s%s", k, "", body[b]);
				memset(&rep, 0, sizeof(rep));
				ntext = detect_text(text, strlen(text), &MASK_ALL, &rep);
				snprintf(want, sizeof(want), "{\"x\": 1, \"s\": \"%s\", \"t\": \"%s\"}",
					 text, text);
				snprintf(text, sizeof(text), "%*s%s", k, "", body[b]);
				snprintf(doc, sizeof(doc), "{\"x\": 1, \"s\": \"%s\", \"t\": \"%s\"}",
					 text, text);
				memset(&r2, 0, sizeof(r2));
				njson = detect_json(doc, strlen(doc), &MASK_ALL, &r2);
				if (njson != 2 * ntext || strcmp(doc, want) || r2.found != rep.found) {
					printf("# offset %d: %d findings, want %d: %s\n", k, njson, 2 * ntext,
					       doc);
					good = 0;
				}
			}
		ok(good, "JSON: findings at every offset, escapes and block edges included");
	}
	{
		char doc[300];

		snprintf(doc, sizeof(doc), "{\"a\": \\\"x\", \"b\": [%s], \"c\": \"call 415-555-2671\"}",
			 "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20");
		memset(&rep, 0, sizeof(rep));
		is_int(detect_json(doc, strlen(doc), &MASK_ALL, &rep), 1,
		       "not JSON (a backslash outside strings): strings still scanned");
		ok(strstr(doc, "call XXX-XXX-XXXX"), "... and masked");
		snprintf(doc, sizeof(doc), "{\"a\": \"123-45-6789\", \"b\": \"%s",
			 "0123456789012345678901234567890123456789012345678901234567890123456789");
		memset(&rep, 0, sizeof(rep));
		is_int(detect_json(doc, strlen(doc), &MASK_ALL, &rep), -1, "long and unterminated: -1");
		ok(strstr(doc, "XXX-XX-XXXX") && rep.count[2] == 1, "... after the strings before it");
	}
	{
		size_t n = 32u << 20, o = 0;
		char *big = malloc(n);
		const char *row = "{\"v\":\"Some ordinary text 2024-01-02 with numbers 12345 and words\"},";
		size_t rl = strlen(row);
		struct timespec t0, t1;
		double s;

		while (o + rl < n) {
			memcpy(big + o, row, rl);
			o += rl;
		}
		memset(&rep, 0, sizeof(rep));
		clock_gettime(CLOCK_MONOTONIC, &t0);
		detect_json(big, o, &MASK_ALL, &rep);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
		is_int(rep.found, 0, "no findings in ordinary text");
		printf("# note: detectors %.2f GB/s over string-heavy JSON\n", (double)o / s / 1e9);
		free(big);
	}
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}
