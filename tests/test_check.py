from harness.cli.main import main
from harness.data.check import check_dataset
from harness.data.sources import load_index


def test_clean_dataset_passes(tiny_synth, capsys):
    assert check_dataset(tiny_synth, workers=1, progress=False).ok
    assert main(["data", "check", str(tiny_synth), "--workers", "1"]) == 0
    assert "no problems found" in capsys.readouterr().out


def test_reports_truncated_jpeg_missing_caption_line_and_bad_box(synth_copy, capsys):
    index = load_index(synth_copy, "train")
    jpeg = index.image_paths[0]
    jpeg.write_bytes(jpeg.read_bytes()[: len(jpeg.read_bytes()) // 2])
    caption = index.caption_paths[1]
    caption.write_text("\n".join(caption.read_text().splitlines()[:9]) + "\n")
    boxes = synth_copy / "CUB_200_2011" / "bounding_boxes.txt"
    lines = boxes.read_text().splitlines()
    image_id = lines[2].split()[0]
    lines[2] = f"{image_id} 10.0 10.0 5000.0 40.0"
    boxes.write_text("\n".join(lines) + "\n")
    bad_box_image = (synth_copy / "CUB_200_2011" / "images.txt").read_text().splitlines()[2].split()[1]

    report = check_dataset(synth_copy, workers=1, progress=False)
    text = "\n".join(report.problems)
    assert f"{jpeg}: unreadable or corrupt image" in text
    assert f"{caption}: has 9 caption lines, expected 10" in text
    assert f"{bad_box_image}: bounding box" in text and "outside" in text
    assert main(["data", "check", str(synth_copy), "--workers", "1"]) == 1
    assert "problem(s)" in capsys.readouterr().out


def test_reports_missing_image_overlapping_classes_and_changed_files(synth_copy):
    from harness.data.safe_pickle import dump_pickle, safe_load_pickle

    index = load_index(synth_copy, "test")
    index.image_paths[0].unlink()
    train_classes = safe_load_pickle(synth_copy / "train" / "class_info.pickle")
    test_classes = safe_load_pickle(synth_copy / "test" / "class_info.pickle")
    test_classes[0] = train_classes[0]
    dump_pickle(test_classes, synth_copy / "test" / "class_info.pickle")
    other = load_index(synth_copy, "train").image_paths[3]
    other.write_bytes(load_index(synth_copy, "train").image_paths[4].read_bytes())
    text = "\n".join(check_dataset(synth_copy, workers=1, progress=False).problems)
    assert f"{index.image_paths[0]}: image file is missing" in text
    assert "classes are in both train and test" in text
    assert f"{other}: content differs from the manifest" in text


def test_not_a_dataset_is_a_clear_error(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path)]) == 1
    assert "not a dataset folder" in capsys.readouterr().out
