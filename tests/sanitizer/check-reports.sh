#!/usr/bin/env bash
# check-reports.sh DIR: fails, printing them, if the sanitizers wrote any report into DIR.
# check-reports.sh --clear DIR: empties DIR (made if missing: ASan writes no report to a folder
# that does not exist).
#
# A file that holds nothing but the runtime's warnings about its symbolizer is not a report. The
# runtime symbolizes a stack to match it against the suppressions (tests/sanitizer/*.supp) and
# writes "WARNING: Can't write to symbolizer at fd N" when its pipe to the llvm-symbolizer it
# started fails (that process has gone); it then starts llvm-symbolizer again and asks again (CI
# saw one such file, with nothing else in it, in a run whose tests all passed). Were the
# suppression left unmatched, the report itself would follow in the same file and fail the
# check. (An empty file counts as a report: a process that died while writing one.)
if [ "$1" = --clear ]; then
  rm -rf "$2" && mkdir -p "$2"
  exit
fi
dir=$1
shopt -s nullglob
symbolizer='^==[0-9]+==WARNING: (Can.t (write to|read from) symbolizer|(external s|S)ymbolizer)'
reports=0
for f in "$dir"/*; do
  if [ -s "$f" ] && ! grep -Evq "$symbolizer" "$f"; then
    echo "sanitizers: $f holds only symbolizer warnings, not a report:"
    sed 's/^/  /' "$f"
    continue
  fi
  echo "==== $f"
  head -n 100 "$f"
  reports=$((reports + 1))
done
if [ "$reports" -eq 0 ]; then
  echo "sanitizers: ASan, UBSan and LeakSanitizer reported nothing"
  exit 0
fi
echo "sanitizers: $reports report(s) in $dir"
exit 1
