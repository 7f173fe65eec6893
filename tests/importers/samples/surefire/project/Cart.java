package com.example.shop;
public class Cart {
    public static int total(int price, int qty) { return price * qty; }
    public static long tax(int amount) { return Math.round(amount * 0.2); }
    public static int[] loadPrices(String path) { throw new IllegalStateException("price file missing: " + path); }
}
