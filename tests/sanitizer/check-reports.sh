#!/usr/bin/env bash
# check-reports.sh DIR: fails, printing them, if the sanitizers wrote any report into DIR.
# check-reports.sh --clear DIR: empties DIR (made if missing: ASan writes no report to a folder
# that does not exist).
if [ "$1" = --clear ]; then
  rm -rf "$2" && mkdir -p "$2"
  exit
fi
dir=$1
shopt -s nullglob
files=("$dir"/*)
if [ ${#files[@]} -eq 0 ]; then
  echo "sanitizers: ASan, UBSan and LeakSanitizer reported nothing"
  exit 0
fi
for f in "${files[@]}"; do
  echo "==== $f"
  head -n 100 "$f"
done
echo "sanitizers: ${#files[@]} report(s) in $dir"
exit 1
