"""Check mmvidt against reference outputs recorded from the official implementations.

    python tools/misc/check_parity.py ../shared/fixtures/*.pt

Prints one row per recorded output, ``<fixture> <output-name> <max-abs-diff> <tolerance>
ok|FAIL|skipped``, then ``parity: K/N fixtures match``. Exit status 0 only if every fixture
matches, i.e. every recorded output was produced and is within the fixture's tolerance.
"""
import argparse
import os
import sys

from mmvidt.official.parity import ParityRow, check_fixture, fixture_matches


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('fixtures', nargs='+', help='fixture files (.pt)')
    args = parser.parse_args()

    matched = 0
    for path in args.fixtures:
        if not os.path.isfile(path):
            rows = [ParityRow(os.path.basename(path), '-', None, None, 'FAIL',
                              f'no such file: {path}')]
        else:
            try:
                rows = check_fixture(path)
            except Exception as exc:  # report and go on with the other fixtures
                rows = [ParityRow(os.path.basename(path), '-', None, None, 'FAIL',
                                  f'{type(exc).__name__}: {exc}')]
        for row in rows:
            print(row.format(), flush=True)
        matched += fixture_matches(rows)
    print(f'parity: {matched}/{len(args.fixtures)} fixtures match')
    return 0 if matched == len(args.fixtures) else 1


if __name__ == '__main__':
    sys.exit(main())
