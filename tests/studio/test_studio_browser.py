"""``dofbot-rl studio`` used as a person would, in a real headless Chromium."""

import re
import time

import pytest

from conftest import VIEWPORT, robot_screen_point


def _open(browser, url, shots=None):
    page = browser.new_page(viewport=VIEWPORT)
    start = time.monotonic()
    page.goto(url)
    page.get_by_role("button", name="Load", exact=True).wait_for(timeout=90_000)
    print(f"page load: {time.monotonic() - start:.2f} s")
    return page


def _expect_text(page, text, timeout_s=60.0):
    from playwright.sync_api import expect

    expect(page.get_by_text(text).first).to_be_visible(timeout=timeout_s * 1000)


def _teleop_line(page):
    return page.get_by_text(re.compile(r"^env \d+: ")).first.inner_text()


def test_load_click_a_robot_and_jog_it(browser, studio, shots):
    """Load 4 robots, click robot 2 in the 3D view, hold A: its joint1 target moves; Esc releases."""
    s = studio("num_envs=4")
    page = _open(browser, s.url)
    page.screenshot(path=str(shots / "01_opened.png"))
    page.get_by_role("button", name="Load", exact=True).click()
    _expect_text(page, "Loaded 4 robots")
    time.sleep(1.0)  # a few 3D frames
    x, y = robot_screen_point(4, 2)
    page.mouse.click(x, y)
    _expect_text(page, "env 2 selected")
    before = _teleop_line(page)
    assert before.startswith("env 2: ")
    page.screenshot(path=str(shots / "02_robot2_selected.png"))
    page.keyboard.down("a")  # joint1 +, held
    time.sleep(1.5)
    page.keyboard.up("a")
    time.sleep(0.5)
    after = _teleop_line(page)
    j1_before, j1_after = float(before.split()[2]), float(after.split()[2])
    assert j1_after > j1_before + 0.3, (before, after)
    page.screenshot(path=str(shots / "03_jogged.png"))
    page.keyboard.press("Escape")
    _expect_text(page, "Robot released to the policy")
    page.close()


def test_bad_robot_count_is_one_line(browser, studio, shots):
    s = studio()
    page = _open(browser, s.url)
    field = page.get_by_label("Robots")
    field.fill("0")
    field.press("Enter")
    _expect_text(page, "number of robots must be 1..8192, got 0")
    assert page.get_by_role("button", name="Load", exact=True).is_disabled()
    page.screenshot(path=str(shots / "04_bad_robot_count.png"))
    page.close()
