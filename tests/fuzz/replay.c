/* replay.c - runs a libFuzzer driver over its seed corpus without libFuzzer, so that
 * `make check` replays every corpus (tests/fuzz/corpus/NAME) on every build.
 * Description: replays a fuzz corpus through its driver; a crash fails the test. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(void)
{
	char path[512];
	struct dirent *de;
	DIR *d = opendir(CORPUS);
	int n = 0;

	if (!d) {
		printf("not ok 1 - corpus %s: cannot open\n", CORPUS);
		return 1;
	}
	while ((de = readdir(d))) {
		static char buf[1 << 20];
		size_t len;
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", CORPUS, de->d_name);
		f = fopen(path, "rb");
		if (!f)
			continue;
		len = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
		n++;
	}
	closedir(d);
	printf("%s %d - replayed %d inputs of %s\n", n ? "ok" : "not ok", 1, n, CORPUS);
	printf("1..1\n");
	return n ? 0 : 1;
}
