"""The Python codec against the published test vectors (protocol/vectors/v1.json).

Run with the venv's python (bench/locust/install-locust.sh builds it):
    bench/.cache/locust-venv/bin/python bench/locust/test_vectors.py
LANTERN_VECTORS names another vector file (the mutation check of bench/locust/locust.test.ts).
"""

import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # run as a file or as a module from anywhere

from lantern_protocol import LanternFrameError, decode_frame, encode_frame

VECTORS = os.environ.get('LANTERN_VECTORS') or os.path.join(HERE, '..', '..', 'protocol', 'vectors', 'v1.json')


def load_vectors():
    with open(VECTORS, encoding='utf-8') as f:
        return json.load(f)


def same(a, b):
    """Equal, types included (1, 1.0 and True differ), maps in the same key order."""
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if type(a) is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


class VectorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.file = load_vectors()

    def test_file_is_protocol_1_with_vectors(self):
        self.assertEqual(self.file['protocol'], 1)
        self.assertGreater(len(self.file['valid']), 50)
        self.assertGreater(len(self.file['invalid']), 10)

    def test_every_valid_vector_encodes_to_its_hex(self):
        for v in self.file['valid']:
            with self.subTest(v['name']):
                self.assertEqual(encode_frame(v['frame']).hex(), v['hex'])

    def test_every_valid_vector_decodes_to_its_frame(self):
        for v in self.file['valid']:
            with self.subTest(v['name']):
                decoded = decode_frame(bytes.fromhex(v['hex']))
                self.assertTrue(same(decoded, v['frame']), f'{decoded!r} != {v["frame"]!r}')

    def test_bad_frame_vectors_are_refused(self):
        refused = [v for v in self.file['invalid'] if v['expect']['error'] == 'bad_frame']
        self.assertGreater(len(refused), 10)
        for v in refused:
            with self.subTest(v['name']):
                with self.assertRaises(LanternFrameError):
                    decode_frame(bytes.fromhex(v['hex']))

    def test_field_error_vectors_are_well_formed_frames(self):
        # unknown_type / invalid_field are the server's schema checks: the frame itself decodes.
        for v in self.file['invalid']:
            if v['expect']['error'] == 'bad_frame':
                continue
            with self.subTest(v['name']):
                self.assertIsInstance(decode_frame(bytes.fromhex(v['hex'])), dict)


class EncodeRulesTest(unittest.TestCase):
    """Rules of codec.ts that the vectors do not reach."""

    def test_integers_take_their_smallest_form_and_stay_ints_above_2_32(self):
        self.assertEqual(encode_frame({'n': 1_700_000_000_000}).hex(), '81a16ecf0000018bcfe56800')
        self.assertEqual(encode_frame({'n': -33}).hex(), '81a16ed0df')
        self.assertEqual(encode_frame({'n': 3.0}), encode_frame({'n': 3}))
        self.assertEqual(encode_frame({'n': -0.0}).hex(), '81a16e00')

    def test_unsafe_or_non_finite_numbers_are_refused(self):
        for bad in (2**53, -(2**53), float('nan'), float('inf'), object()):
            with self.assertRaises(TypeError):
                encode_frame({'n': bad})

    def test_a_lone_surrogate_is_written_as_u_fffd(self):
        self.assertEqual(encode_frame({'s': 'a\ud800'}), encode_frame({'s': 'a\ufffd'}))

    def test_a_round_trip_keeps_every_allowed_type(self):
        frame = {'t': 'x', 'i': 2**53 - 1, 'f': 1.5, 'b': True, 'z': None, 'bin': b'\x00\x01', 'a': [1, 'two', {'k': []}]}
        self.assertEqual(decode_frame(encode_frame(frame)), frame)

    def test_structural_limits_are_checked(self):
        deep = {'t': 'x'}
        node = deep
        for _ in range(8):
            node['d'] = {}
            node = node['d']
        with self.assertRaises(LanternFrameError):
            decode_frame(encode_frame(deep))
        with self.assertRaises(LanternFrameError):
            decode_frame(encode_frame({'s': '\U0001F600' * 8193}))  # 16386 UTF-16 code units
        decode_frame(encode_frame({'s': '\U0001F600' * 8192}))


if __name__ == '__main__':
    unittest.main()
