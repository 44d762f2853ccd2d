/* Description: jsonpos finds the line of a value by path, and stays inside its input. */
#include "jsonpos.h"
#include "tap.h"

static int line(const char *text, const char *path)
{
	return jsonpos_line(tap_guarded(text, strlen(text)), strlen(text), path);
}

int main(void)
{
	const char *doc = "{\n"
			  "  \"a\": 1,\n"
			  "  \"b\": {\n"
			  "    \"c\": [10,\n"
			  "          {\"d\": \"x\\\"y\"},\n"
			  "          \"e\"]\n"
			  "  },\n"
			  "  \"f\": \"}]\"\n"
			  "}";

	is_int(line(doc, ""), 1, "root is line 1");
	is_int(line(doc, "a"), 2, "top-level key");
	is_int(line(doc, "b.c"), 4, "nested key");
	is_int(line(doc, "b.c[0]"), 4, "array element 0");
	is_int(line(doc, "b.c[1].d"), 5, "key in object in array (escaped quote in value)");
	is_int(line(doc, "b.c[2]"), 6, "array element 2");
	is_int(line(doc, "f"), 8, "key after brackets inside strings");
	is_int(line(doc, "b.zz"), 3, "missing key: nearest enclosing value");
	is_int(line(doc, "b.c[9]"), 4, "missing index: nearest enclosing value");
	is_int(line("{\"a\":", "a"), 1, "truncated input does not over-read");
	is_int(line("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1",
		    "x"), 1, "deep nesting is bounded");
	return tap_done();
}
