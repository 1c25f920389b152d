#!/usr/bin/env bats
# Every output a tool writes goes one way (libcore/outfile.c): a regular file is replaced by
# rename, a symbolic link keeps pointing at its replaced target, devices, FIFOs and
# /dev/stdout are written in place, new files get 0666 & ~umask, replaced ones keep their
# mode, and a failure leaves the old file as it was. Maps (-o), reports (--tsv, --plot,
# --q-atoms, --q-residues, --q-model) and weights (lvm-model -o) alike.
load helpers
bats_require_minimum_version 1.5.0

# A four-atom model and its molmap (no shared data needed).
fixture() {
  printf '%s\n' \
    'ATOM      1  N   GLY A   1      10.000  10.000  10.000  1.00  0.00           N' \
    'ATOM      2  CA  GLY A   1      11.400  10.200  10.100  1.00  0.00           C' \
    'ATOM      3  C   GLY A   1      12.100  11.500  10.300  1.00  0.00           C' \
    'ATOM      4  O   GLY A   1      11.500  12.600  10.200  1.00  0.00           O' 'END' > "$TMP/t.pdb"
  model-map -q --res 3 "$TMP/t.pdb" -o "$TMP/m.mrc"
}

no_temporaries() {
  local left
  left=$(find "$TMP" -name '*.tmp' | head -n 3)
  [ -z "$left" ] || { echo "temporaries left: $left"; return 1; }
}

@test "/dev/full: map, report, plot and weights fail with one line, and /dev/full stays a device" {
  [ -c /dev/full ] || skip "no /dev/full"
  fixture
  run --separate-stderr mrc-resample --apix 2 -f mrc -o /dev/full "$TMP/m.mrc"
  [ "$status" -eq 1 ]
  [ "$stderr" = "mrc-resample: /dev/full: write failed: No space left on device" ]
  run --separate-stderr fsc-eval "$TMP/m.mrc" "$TMP/m.mrc" --tsv /dev/full
  [ "$status" -eq 1 ]
  [ "$stderr" = "fsc-eval: /dev/full: write failed: No space left on device" ]
  run --separate-stderr fsc-eval "$TMP/m.mrc" --model "$TMP/t.pdb" --res 3 --q-atoms /dev/full
  [ "$status" -eq 1 ]
  [ "$stderr" = "fsc-eval: /dev/full: write failed: No space left on device" ]
  run --separate-stderr lvm-model init --config width=16,head_dim=8,levels=2,depth=1 -o /dev/full
  [ "$status" -eq 1 ]
  [[ "$stderr" == "lvm-model: /dev/full: write failed: No space left on device" ]]
  run --separate-stderr vol-convert "$TMP/m.mrc" -o /dev/full   # no extension: refused before writing
  [ "$status" -eq 1 ]
  [[ "$stderr" == *"/dev/full: unknown output format"* ]]
  [ -c /dev/full ]
}

@test "/dev/stdout gets the bytes, in order with the summary, and a redirected file is not renamed over" {
  fixture
  vol-convert "$TMP/m.mrc" -o "$TMP/ref.mrc"
  vol-convert "$TMP/m.mrc" -f mrc -o /dev/stdout > "$TMP/out.mrc"
  cmp "$TMP/ref.mrc" "$TMP/out.mrc"
  vol-convert "$TMP/m.mrc" -f mrc -o - > "$TMP/dash.mrc"
  cmp "$TMP/ref.mrc" "$TMP/dash.mrc"
  # a report to /dev/stdout while stdout is a file: the file keeps its inode and gets both
  : > "$TMP/both.txt"
  local ino
  ino=$(stat -c %i "$TMP/both.txt")
  fsc-eval "$TMP/m.mrc" "$TMP/m.mrc" --tsv /dev/stdout > "$TMP/both.txt"
  [ "$(stat -c %i "$TMP/both.txt")" = "$ino" ]
  [ "$(head -n 1 "$TMP/both.txt")" = "$(printf 'shell\tinv_angstrom\tangstrom\tfsc\tcount')" ]
  grep -q '^fsc-eval: FSC ' "$TMP/both.txt"
  # through a pipe, and per-atom Q-scores to /dev/stdout before the summary
  run --separate-stderr bash -c "fsc-eval '$TMP/m.mrc' --model '$TMP/t.pdb' --res 3 --q-atoms /dev/stdout | cat"
  [ "$status" -eq 0 ]
  [ "${lines[0]}" = "$(printf 'chain\tresseq\ticode\tresname\tatom\telement\tq')" ]
  [[ "${lines[5]}" == *FSC* ]]
  no_temporaries
}

@test "a FIFO gets the bytes and stays a FIFO (map and report)" {
  fixture
  mkfifo "$TMP/fifo"
  vol-convert "$TMP/m.mrc" -o "$TMP/ref.mrc"
  cat "$TMP/fifo" > "$TMP/got.mrc" &
  vol-convert "$TMP/m.mrc" -f mrc -o "$TMP/fifo"
  wait
  cmp "$TMP/ref.mrc" "$TMP/got.mrc"
  cat "$TMP/fifo" > "$TMP/got.tsv" &
  fsc-eval -q "$TMP/m.mrc" "$TMP/m.mrc" --tsv "$TMP/fifo" > /dev/null
  wait
  fsc-eval -q "$TMP/m.mrc" "$TMP/m.mrc" --tsv "$TMP/ref.tsv" > /dev/null
  cmp "$TMP/ref.tsv" "$TMP/got.tsv"
  [ -p "$TMP/fifo" ]
  no_temporaries
}

@test "a symbolic link is kept and its target replaced (map, report, plot, weights; dangling too)" {
  fixture
  mkdir "$TMP/big"
  echo old > "$TMP/big/real.mrc"
  ln -s big/real.mrc "$TMP/out.mrc"
  vol-convert "$TMP/m.mrc" -o "$TMP/out.mrc"
  [ -L "$TMP/out.mrc" ] && [ "$(readlink "$TMP/out.mrc")" = big/real.mrc ]
  cmp <(vol-convert "$TMP/m.mrc" -f mrc -o -) "$TMP/big/real.mrc"
  ln -s big/curve.tsv "$TMP/curve.tsv"   # dangling: the file appears where the link points
  ln -s big/plot.svg "$TMP/plot.svg"
  fsc-eval -q "$TMP/m.mrc" "$TMP/m.mrc" --tsv "$TMP/curve.tsv" --plot "$TMP/plot.svg" > /dev/null
  [ -L "$TMP/curve.tsv" ] && [ -f "$TMP/big/curve.tsv" ] && [ -L "$TMP/plot.svg" ] && [ -f "$TMP/big/plot.svg" ]
  grep -q '^shell' "$TMP/big/curve.tsv"
  grep -q '<svg' "$TMP/big/plot.svg"
  ln -s big/q.pdb "$TMP/q.pdb"
  fsc-eval -q "$TMP/m.mrc" --model "$TMP/t.pdb" --res 3 --q-model "$TMP/q.pdb" > /dev/null
  [ -L "$TMP/q.pdb" ] && grep -q '^ATOM' "$TMP/big/q.pdb"
  ln -s big/w.safetensors "$TMP/w.safetensors"
  lvm-model init --config width=16,head_dim=8,levels=2,depth=1 -o "$TMP/w.safetensors" 2>/dev/null
  [ -L "$TMP/w.safetensors" ] && [ -s "$TMP/big/w.safetensors" ]
  no_temporaries
}

@test "umask 022 and 077 are honoured by maps and reports alike; a replaced file keeps its mode" {
  fixture
  for um in 022 077; do
    want=$([ $um = 022 ] && echo 644 || echo 600)
    rm -f "$TMP"/o.*
    (
      umask $um
      vol-convert "$TMP/m.mrc" -o "$TMP/o.mrc"
      vol-convert "$TMP/m.mrc" -o "$TMP/o.tif"
      vol-convert "$TMP/m.mrc" -o "$TMP/o.cvol"
      fsc-eval -q "$TMP/m.mrc" "$TMP/m.mrc" --tsv "$TMP/o.tsv" --plot "$TMP/o.png" > /dev/null
      fsc-eval -q "$TMP/m.mrc" --model "$TMP/t.pdb" --res 3 --q-atoms "$TMP/o.atoms" \
        --q-residues "$TMP/o.res" --q-model "$TMP/o.pdb" > /dev/null
      hist-compare -q "$TMP/m.mrc" "$TMP/m.mrc" --plot "$TMP/o.svg" > /dev/null
      lvm-model init --config width=16,head_dim=8,levels=2,depth=1 -o "$TMP/o.safetensors" 2>/dev/null
    )
    for f in "$TMP"/o.*; do
      [ "$(stat -c %a "$f")" = "$want" ] || { echo "umask $um: $f is $(stat -c %a "$f"), want $want"; false; }
    done
  done
  chmod 640 "$TMP/o.mrc" "$TMP/o.tsv"
  (umask 077; vol-convert "$TMP/m.mrc" -o "$TMP/o.mrc"; fsc-eval -q "$TMP/m.mrc" "$TMP/m.mrc" --tsv "$TMP/o.tsv" > /dev/null)
  [ "$(stat -c %a "$TMP/o.mrc")" = 640 ] && [ "$(stat -c %a "$TMP/o.tsv")" = 640 ]
}

@test "a failure leaves the old file intact and no temporary behind" {
  fixture
  echo precious > "$TMP/keep.mrc"
  run --separate-stderr vol-convert --frame 2 "$TMP/m.mrc" -o "$TMP/keep.mrc"   # fails after the output is open
  [ "$status" -eq 1 ]
  [[ "$stderr" == *"no frame 2"* ]]
  [ "$(cat "$TMP/keep.mrc")" = precious ]
  ln -s keep.mrc "$TMP/keep-link.mrc"
  run vol-convert --frame 2 "$TMP/m.mrc" -o "$TMP/keep-link.mrc"
  [ "$status" -eq 1 ] && [ -L "$TMP/keep-link.mrc" ] && [ "$(cat "$TMP/keep.mrc")" = precious ]
  run --separate-stderr fsc-eval "$TMP/m.mrc" "$TMP/m.mrc" --tsv "$TMP/keep.tsv" --plot "$TMP/nodir/p.svg"
  [ "$status" -eq 1 ]
  [ "${#stderr_lines[@]}" -eq 1 ]
  [[ "$stderr" == *"nodir/p.svg: cannot create output: No such file or directory"* ]]
  run --separate-stderr fsc-eval "$TMP/m.mrc" "$TMP/m.mrc" --tsv "$TMP"
  [ "$status" -eq 1 ]
  [[ "$stderr" == "fsc-eval: $TMP: is a directory, not a file to write" ]]
  ln -s loop_b "$TMP/loop_a"; ln -s loop_a "$TMP/loop_b"
  run --separate-stderr vol-convert "$TMP/m.mrc" -o "$TMP/loop_a" -f mrc
  [ "$status" -eq 1 ]
  [[ "$stderr" == *"loop_a: Too many levels of symbolic links" ]]
  no_temporaries
}
