import numpy as np

from salttune.pseudo import Collector, confident


def test_an_image_is_confident_when_enough_of_its_pixels_are():
    p = np.full((3, 10, 10), 0.95, np.float32)
    p[1, 0, :5] = 0.5  # 5 of 100 pixels unsure: 95% sure
    p[2] = 0.02  # surely empty
    np.testing.assert_array_equal(confident(p, 0.9, 0.99), [True, False, True])
    np.testing.assert_array_equal(confident(p, 0.9, 0.95), [True, True, True])
    np.testing.assert_array_equal(confident(p, 0.96, 0.5), [False, False, True])  # 0.95 is not >= 0.96


def test_the_collector_keeps_the_confident_images_of_a_stream_in_order():
    ids = [f"t{i}" for i in range(5)]
    images = np.arange(5, dtype=np.uint8)[:, None, None] * np.ones((1, 4, 4), np.uint8)
    c = Collector(ids, images, np.arange(5) * 10.0, confidence=0.9, share=1.0)
    sure, unsure = np.full((4, 4), 0.99, np.float32), np.full((4, 4), 0.6, np.float32)
    c.add(np.stack([unsure, sure, sure]), np.ones((3, 4, 4), bool))  # images 0, 1, 2
    c.add(np.stack([sure, unsure]), np.zeros((2, 4, 4), bool))  # images 3, 4
    kept = c.arrays()
    assert kept.ids == ["t1", "t2", "t3"] and kept.images[:, 0, 0].tolist() == [1, 2, 3] and kept.depths.tolist() == [10, 20, 30]
    assert kept.masks.reshape(3, -1).any(1).tolist() == [True, True, False]
    assert c.summary() == {"confidence": 0.9, "share": 1.0, "test_images": 5, "kept": 3, "kept_empty": 1}
    other = Collector(ids, images, np.zeros(5), 0.9, 1.0)
    other.add(np.stack([unsure, sure, sure]), np.zeros((3, 4, 4), bool))  # the same images, other labels
    other.add(np.stack([sure, unsure]), np.zeros((2, 4, 4), bool))
    assert other.fingerprint() != c.fingerprint() and len(c.fingerprint()) == 10
